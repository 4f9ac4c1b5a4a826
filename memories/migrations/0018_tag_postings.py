"""Tag postings: one row per (memory, tag) in the memory's visibility bucket, so a tag filter reads only
what the caller may see.

tmws_tagged_memory_ids (migration 0012) read every memory carrying the tag from the table to test the
read rule on it: a tag on 1% of a million memories cost 70 ms before the search began, though the caller
read a tenth of them. `memory_tags` holds each tag of each memory with the memory's bucket (migration
0009: the memories one kind of reader sees together), ordered by tag and bucket; the function reads the
postings of the tags in the caller's readable buckets (tmws_readable_buckets), plus the shared memories
granted to it one by one, from the index alone. The search's own query still applies the read rule and
its filters to what comes back: the postings only narrow.

Statement triggers keep the postings, as they keep the keyword postings: rows whose tags or bucket
changed are re-indexed. Buckets are created here when missing (with no documents; the keyword
statistics triggers count them), so the order the triggers fire in does not matter. The agent role
holds no grant on the table.
"""
from django.db import migrations

AGENT_ROLE = "tmws_agent"
NO_AGENT = "00000000-0000-0000-0000-000000000000"

# The bucket of a row, as migration 0011 defines it. Copies, not imports, so no later edit elsewhere
# changes what this migration does.
BUCKET_KIND = "(CASE WHEN access_level IN ('public', 'system') THEN 'open' ELSE access_level END)"
BUCKET_AGENT = (f"(CASE WHEN access_level IN ('private', 'shared') THEN coalesce(agent_id, '{NO_AGENT}'::uuid)"
                f" ELSE '{NO_AGENT}'::uuid END)")


def row_bucket(alias: str) -> tuple[str, str]:
    """The bucket kind and owner of the row `alias`, as SQL expressions."""
    kind = BUCKET_KIND.replace("access_level", f"{alias}.access_level")
    agent = BUCKET_AGENT.replace("access_level", f"{alias}.access_level").replace("agent_id", f"{alias}.agent_id")
    return kind, agent


def add_postings(rows: str) -> str:
    """SQL indexing the tags of the memories of the FROM item `rows`, creating their buckets when missing."""
    kind, agent = row_bucket("row_")
    return f"""
    INSERT INTO memory_term_buckets (kind, namespace_id, agent_id)
    SELECT DISTINCT {kind}, row_.namespace_id, {agent}
      FROM {rows} row_
     WHERE jsonb_typeof(row_.context_tags) = 'array' AND jsonb_array_length(row_.context_tags) > 0
     ORDER BY 1, 2, 3
        ON CONFLICT (kind, namespace_id, agent_id) DO NOTHING;

    INSERT INTO memory_tags (tag, bucket_id, memory_id)
    SELECT tag.tag, bucket.id, row_.id
      FROM {rows} row_
      JOIN memory_term_buckets bucket
        ON bucket.kind = {kind} AND bucket.namespace_id = row_.namespace_id AND bucket.agent_id = {agent}
     CROSS JOIN LATERAL tmws_memory_tags(row_.context_tags) tag(tag);
"""


def remove_postings(rows: str) -> str:
    return f"    DELETE FROM memory_tags WHERE memory_id IN (SELECT id FROM {rows} row_);\n"


CHANGED = """(SELECT {side}.* FROM old_rows JOIN new_rows USING (id)
     WHERE (old_rows.context_tags, old_rows.access_level, old_rows.namespace_id, old_rows.agent_id)
           IS DISTINCT FROM (new_rows.context_tags, new_rows.access_level, new_rows.namespace_id, new_rows.agent_id))"""


def trigger_function(event: str, body: str) -> str:
    return f"""
CREATE FUNCTION tmws_tag_postings_{event}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
{body}
    RETURN NULL;
END
$$;
"""


TRIGGERS = "".join([
    trigger_function("insert", add_postings("new_rows")),
    trigger_function("delete", remove_postings("old_rows")),
    # Only rows whose tags or bucket changed are re-indexed (most updates set embeddings or weights).
    trigger_function("update", f"""
    PERFORM 1 FROM {CHANGED.format(side="old_rows")} changed LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
{remove_postings(CHANGED.format(side="old_rows"))}
{add_postings(CHANGED.format(side="new_rows"))}"""),
    trigger_function("truncate", "    TRUNCATE memory_tags;"),
]) + """
CREATE TRIGGER memories_tag_postings_insert AFTER INSERT ON memories
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tmws_tag_postings_insert();
CREATE TRIGGER memories_tag_postings_delete AFTER DELETE ON memories
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tmws_tag_postings_delete();
CREATE TRIGGER memories_tag_postings_update AFTER UPDATE ON memories
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION tmws_tag_postings_update();
CREATE TRIGGER memories_tag_postings_truncate AFTER TRUNCATE ON memories
    FOR EACH STATEMENT EXECUTE FUNCTION tmws_tag_postings_truncate();
"""

TAGGED_IDS = """
-- The memories the current agent may read that carry every tag of `tags` (a JSON array of strings). Without
-- an agent (app.current_agent_id unset) only public and system memories are read.
CREATE OR REPLACE FUNCTION tmws_tagged_memory_ids(tags jsonb) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public ROWS 200 AS $$
    WITH wanted AS MATERIALIZED (SELECT ARRAY(SELECT tmws_memory_tags(tags)) AS tags),
    buckets AS MATERIALIZED (
        SELECT CASE WHEN tmws_current_agent() IS NULL
                    THEN ARRAY(SELECT id FROM memory_term_buckets WHERE kind = 'open')
                    ELSE tmws_readable_buckets(NULL) END AS ids),
    granted AS MATERIALIZED (
        SELECT ARRAY(
            SELECT share.content_object_id
              FROM memories_memoryuserobjectpermission share
              JOIN auth_permission permission ON permission.id = share.permission_id
              JOIN agents ON agents.user_id = share.user_id
              JOIN memories ON memories.id = share.content_object_id
             WHERE agents.id = tmws_current_agent() AND permission.codename = 'view_memory'
               AND memories.access_level = 'shared'
        ) AS ids),
    postings AS (
        SELECT posting.memory_id
          FROM memory_tags posting, wanted, buckets
         WHERE posting.tag = ANY (wanted.tags) AND posting.bucket_id = ANY (buckets.ids)
        UNION ALL
        SELECT posting.memory_id
          FROM memory_tags posting, wanted, buckets, granted
         WHERE posting.memory_id = ANY (granted.ids) AND posting.tag = ANY (wanted.tags)
           AND NOT (posting.bucket_id = ANY (buckets.ids))
    )
    SELECT postings.memory_id
      FROM postings
     GROUP BY postings.memory_id
    HAVING count(*) = (SELECT cardinality(wanted.tags) FROM wanted)
$$;
"""

FORWARD = f"""
-- The distinct string elements of a JSON array of tags (nothing for anything else).
CREATE FUNCTION tmws_memory_tags(tags jsonb) RETURNS SETOF text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT DISTINCT element #>> '{{}}'
      FROM jsonb_array_elements(CASE WHEN jsonb_typeof(tags) = 'array' THEN tags ELSE '[]'::jsonb END) element
     WHERE jsonb_typeof(element) = 'string'
$$;

CREATE TABLE memory_tags (
    tag text NOT NULL,
    bucket_id bigint NOT NULL,
    memory_id uuid NOT NULL
);
REVOKE ALL ON memory_tags FROM PUBLIC;
REVOKE ALL ON memory_tags FROM {AGENT_ROLE};
-- Rows written before this migration.
{add_postings("memories")}
CREATE INDEX memory_tags_search ON memory_tags (tag, bucket_id) INCLUDE (memory_id);
CREATE UNIQUE INDEX memory_tags_memory ON memory_tags (memory_id, tag);
{TRIGGERS}
{TAGGED_IDS}
"""

# The read rule and tmws_tagged_memory_ids as migration 0012 left them, restored by the reverse.
VISIBLE_0012 = """(
    access_level IN ('public', 'system')
    OR agent_id = tmws_current_agent()
    OR (access_level = 'shared' AND (
        namespace_id = ANY ((SELECT tmws_readable_namespace_ids(tmws_current_agent()))::uuid[])
        OR id IN (
            SELECT share.content_object_id
              FROM memories_memoryuserobjectpermission share
              JOIN auth_permission permission ON permission.id = share.permission_id
              JOIN agents ON agents.user_id = share.user_id
             WHERE agents.id = tmws_current_agent() AND permission.codename = 'view_memory')))
)"""

REVERSE = f"""
CREATE OR REPLACE FUNCTION tmws_tagged_memory_ids(tags jsonb) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public ROWS 200 AS $$
    WITH tagged AS MATERIALIZED (
        SELECT id, access_level, agent_id, namespace_id FROM memories WHERE context_tags @> tags
    )
    SELECT id FROM tagged WHERE {VISIBLE_0012}
$$;
DROP TRIGGER IF EXISTS memories_tag_postings_truncate ON memories;
DROP TRIGGER IF EXISTS memories_tag_postings_update ON memories;
DROP TRIGGER IF EXISTS memories_tag_postings_delete ON memories;
DROP TRIGGER IF EXISTS memories_tag_postings_insert ON memories;
DROP FUNCTION IF EXISTS tmws_tag_postings_truncate();
DROP FUNCTION IF EXISTS tmws_tag_postings_update();
DROP FUNCTION IF EXISTS tmws_tag_postings_delete();
DROP FUNCTION IF EXISTS tmws_tag_postings_insert();
DROP TABLE IF EXISTS memory_tags;
DROP FUNCTION IF EXISTS tmws_memory_tags(jsonb);
"""


class Migration(migrations.Migration):
    dependencies = [("memories", "0017_owner_vectors")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
