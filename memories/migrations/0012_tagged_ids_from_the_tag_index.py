"""Tagged candidates read from the tag index alone, then checked for visibility row by row.

The planner combined the tag index with bitmaps of the visibility predicate (every public,
shared and own memory: most of the table) and spent more building those than the rest of the
search: 5.8 ms for a tag on 1% of 100,000 memories, 109 of them readable. Materialising the tagged
rows first and applying the predicate to them takes 2.9 ms. A tag on a tenth of all memories gets
slower (19 to 23 ms), which is where a tag stops narrowing a search anyway.
"""
from django.db import migrations

# The read rule as migration memories/0005 wrote it, and the search functions as 0005 left them (the
# reverse restores them). Copies, not imports, so no later edit elsewhere changes what this one does.
VISIBLE = """(
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


def search_functions(visible: str) -> str:
    """The index-friendly match functions, applying the visibility predicate `visible`."""
    return f"""
CREATE OR REPLACE FUNCTION tmws_tagged_memory_ids(tags jsonb) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public ROWS 200 AS $$
    SELECT id FROM memories WHERE context_tags @> tags AND {visible}
$$;

CREATE OR REPLACE FUNCTION tmws_text_match_ids(query tsquery) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public ROWS 500 AS $$
    SELECT id FROM memories WHERE search_vector @@ query AND {visible}
$$;
"""


FORWARD = f"""
CREATE OR REPLACE FUNCTION tmws_tagged_memory_ids(tags jsonb) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public ROWS 200 AS $$
    WITH tagged AS MATERIALIZED (
        SELECT id, access_level, agent_id, namespace_id FROM memories WHERE context_tags @> tags
    )
    SELECT id FROM tagged WHERE {VISIBLE}
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("memories", "0011_keyword_postings")]

    operations = [migrations.RunSQL(FORWARD, search_functions(VISIBLE))]
