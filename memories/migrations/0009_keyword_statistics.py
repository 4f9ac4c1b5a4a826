"""Okapi BM25 statistics kept by the database, and the order memories were written in.

Keyword ranking needs, for each query word, how many memories hold it (document frequency),
and how many memories there are and how long they are on average. Counting those at query time
would read every matching row; here triggers keep them, per *bucket*: the memories one kind of
reader sees together. Every memory is in exactly one bucket:

- ('open', namespace): public and system memories of a namespace (every agent reads them);
- ('shared', namespace): shared memories of a namespace (its members and descendants read them);
- ('private', namespace, agent): an agent's private memories in a namespace.

A reader's statistics are the sums over the buckets it may read (tmws_keyword_statistics), so a
word that only occurs in memories it cannot read changes nothing in its scores. The statistics
tables are read only through that SECURITY DEFINER function; the agent role holds no grant on them.

Writers touch bucket rows first and term rows after, each in key order, so concurrent bulk writes
into one bucket queue behind its bucket row instead of deadlocking on term rows.

`sequence` numbers memories in the order they were written; `session_key` names the session a
memory belongs to (metadata.session_id, else metadata.session_date). Together they give a memory's
neighbours (docs/search.md).
"""
import django.db.models.fields.json
import django.db.models.functions.comparison
from django.db import migrations, models

AGENT_ROLE = "tmws_agent"
NO_AGENT = "00000000-0000-0000-0000-000000000000"

SEQUENCE = f"""
CREATE SEQUENCE IF NOT EXISTS memories_sequence AS bigint;
GRANT USAGE ON SEQUENCE memories_sequence TO {AGENT_ROLE};
"""

# The bucket of a row of `memories` (or of a transition table with its columns).
BUCKET_KIND = "(CASE WHEN access_level IN ('public', 'system') THEN 'open' ELSE access_level END)"
BUCKET_AGENT = f"(CASE WHEN access_level = 'private' THEN agent_id ELSE '{NO_AGENT}'::uuid END)"


def apply_rows(rows: str, sign: int, bucket_agent: str = BUCKET_AGENT) -> str:
    """SQL adding (sign 1) or removing (sign -1) the memories of the FROM item `rows` to the statistics."""
    kind = BUCKET_KIND.replace("access_level", "row_.access_level")
    agent = bucket_agent.replace("access_level", "row_.access_level").replace("agent_id", "row_.agent_id")
    return f"""
    INSERT INTO memory_term_buckets AS bucket (kind, namespace_id, agent_id, documents, tokens)
    SELECT {kind}, row_.namespace_id, {agent}, {sign} * count(*), {sign} * sum(tmws_token_count(row_.search_vector))
      FROM {rows} row_
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3
        ON CONFLICT (kind, namespace_id, agent_id) DO UPDATE
       SET documents = bucket.documents + excluded.documents, tokens = bucket.tokens + excluded.tokens;

    INSERT INTO memory_term_documents AS term (term, bucket_id, documents)
    SELECT word.lexeme, bucket.id, {sign} * count(*)
      FROM {rows} row_
      JOIN memory_term_buckets bucket
        ON bucket.kind = {kind} AND bucket.namespace_id = row_.namespace_id AND bucket.agent_id = {agent}
     CROSS JOIN LATERAL unnest(row_.search_vector) word
     GROUP BY 1, 2
     ORDER BY 1, 2
        ON CONFLICT (term, bucket_id) DO UPDATE SET documents = term.documents + excluded.documents;
"""


CHANGED = """(SELECT {side}.* FROM old_rows JOIN new_rows USING (id)
     WHERE (old_rows.search_vector, old_rows.access_level, old_rows.namespace_id, old_rows.agent_id)
           IS DISTINCT FROM (new_rows.search_vector, new_rows.access_level, new_rows.namespace_id, new_rows.agent_id))"""


BM25_FUNCTION = """
-- Okapi BM25 of one document for query words `terms` weighted by their `idfs`.
CREATE FUNCTION tmws_bm25(document tsvector, terms text[], idfs float8[], k1 float8, b float8, average_length float8)
RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(query.idf * (k1 + 1) * cardinality(word.positions)
                        / (cardinality(word.positions) + k1 * (1 - b + b * length.tokens / average_length))), 0)
      FROM unnest(document) word
      JOIN unnest(terms, idfs) query(term, idf) ON query.term = word.lexeme
     CROSS JOIN (SELECT tmws_token_count(document) AS tokens) length
$$;
"""

# The sums a reader's statistics are made of, over its readable buckets (a CTE `visible`).
STATISTICS_SUMS = """
    SELECT NULL::text, coalesce(sum(visible.documents), 0)::bigint, coalesce(sum(visible.tokens), 0)::bigint
      FROM visible
    UNION ALL
    SELECT counts.term, sum(counts.documents)::bigint, NULL::bigint
      FROM memory_term_documents counts
      JOIN visible ON visible.id = counts.bucket_id
     WHERE counts.term = ANY (terms)
     GROUP BY counts.term
"""

def statistics_triggers(
    create: str = "CREATE", bucket_agent: str = BUCKET_AGENT, changed: str = CHANGED,
    inserted: str = "", deleted: str = "", moved: str = "", truncated: str = "",
) -> str:
    """The four trigger functions keeping the statistics, each running its extra SQL (later migrations) after."""
    changed_old, changed_new = changed.format(side="old_rows"), changed.format(side="new_rows")

    def function(event: str, body: str) -> str:
        return f"""
{create} FUNCTION tmws_term_statistics_{event}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
{body}
    RETURN NULL;
END
$$;
"""

    return "".join([
        function("insert", apply_rows("new_rows", 1, bucket_agent) + inserted),
        function("delete", apply_rows("old_rows", -1, bucket_agent) + deleted),
        # Only rows whose words or bucket changed move statistics (most updates set embeddings or weights).
        function("update", f"""
    PERFORM 1 FROM {changed_old} changed LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    {apply_rows(changed_old, -1, bucket_agent)}
    {apply_rows(changed_new, 1, bucket_agent)}
    {moved}"""),
        function("truncate", f"    TRUNCATE {truncated}memory_term_documents, memory_term_buckets;"),
    ])


KEYWORD_STATISTICS_FUNCTION = """
-- What a reader's BM25 needs: the first row (term NULL) holds its memory and token counts, the
-- others each word's document frequency, all summed over the buckets it may read. An agent
-- (app.current_agent_id set) gets its own buckets whatever it passes; otherwise (operators, whose
-- scope the service resolves) `namespaces` limits the buckets, NULL meaning all.
CREATE FUNCTION tmws_keyword_statistics(terms text[], namespaces uuid[] DEFAULT NULL)
RETURNS TABLE (term text, documents bigint, tokens bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    WITH reader AS MATERIALIZED (  -- the readable namespaces once, not once per bucket
        SELECT agent, CASE WHEN agent IS NULL THEN NULL ELSE tmws_readable_namespace_ids(agent) END AS readable
          FROM (SELECT tmws_current_agent() AS agent) current_),
    visible AS (
        SELECT bucket.id, bucket.documents, bucket.tokens
          FROM memory_term_buckets bucket, reader
         WHERE CASE WHEN reader.agent IS NULL THEN namespaces IS NULL OR bucket.namespace_id = ANY (namespaces)
               ELSE bucket.kind = 'open'
                 OR (bucket.kind = 'private' AND bucket.agent_id = reader.agent)
                 OR (bucket.kind = 'shared'
                     AND bucket.namespace_id = ANY (reader.readable))
               END)
""" + STATISTICS_SUMS + "$$;\n"

FORWARD = f"""
CREATE FUNCTION tmws_token_count(document tsvector) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(cardinality(positions)), 0)::bigint FROM unnest(document)
$$;

{BM25_FUNCTION}
CREATE TABLE memory_term_buckets (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    namespace_id uuid NOT NULL,
    agent_id uuid NOT NULL,
    documents bigint NOT NULL DEFAULT 0,
    tokens bigint NOT NULL DEFAULT 0,
    UNIQUE (kind, namespace_id, agent_id)
);
CREATE TABLE memory_term_documents (
    term text NOT NULL,
    bucket_id bigint NOT NULL REFERENCES memory_term_buckets (id) ON DELETE CASCADE,
    documents bigint NOT NULL,
    PRIMARY KEY (term, bucket_id)
);
REVOKE ALL ON memory_term_buckets, memory_term_documents FROM PUBLIC;
REVOKE ALL ON memory_term_buckets, memory_term_documents FROM {AGENT_ROLE};

{statistics_triggers()}
CREATE TRIGGER memories_term_statistics_insert AFTER INSERT ON memories
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tmws_term_statistics_insert();
CREATE TRIGGER memories_term_statistics_delete AFTER DELETE ON memories
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tmws_term_statistics_delete();
CREATE TRIGGER memories_term_statistics_update AFTER UPDATE ON memories
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION tmws_term_statistics_update();
CREATE TRIGGER memories_term_statistics_truncate AFTER TRUNCATE ON memories
    FOR EACH STATEMENT EXECUTE FUNCTION tmws_term_statistics_truncate();

{KEYWORD_STATISTICS_FUNCTION}
-- Rows written before this migration.
{apply_rows("memories", 1)}
"""

REVERSE = """
DROP TRIGGER IF EXISTS memories_term_statistics_truncate ON memories;
DROP TRIGGER IF EXISTS memories_term_statistics_update ON memories;
DROP TRIGGER IF EXISTS memories_term_statistics_delete ON memories;
DROP TRIGGER IF EXISTS memories_term_statistics_insert ON memories;
DROP FUNCTION IF EXISTS tmws_keyword_statistics(text[], uuid[]);
DROP FUNCTION IF EXISTS tmws_term_statistics_truncate();
DROP FUNCTION IF EXISTS tmws_term_statistics_update();
DROP FUNCTION IF EXISTS tmws_term_statistics_delete();
DROP FUNCTION IF EXISTS tmws_term_statistics_insert();
DROP TABLE IF EXISTS memory_term_documents;
DROP TABLE IF EXISTS memory_term_buckets;
DROP FUNCTION IF EXISTS tmws_bm25(tsvector, text[], float8[], float8, float8, float8);
DROP FUNCTION IF EXISTS tmws_token_count(tsvector);
"""


class Migration(migrations.Migration):

    dependencies = [
        ("agents", "0002_initial"),
        ("memories", "0008_memory_embedding_model"),
        ("namespaces", "0002_row_level_security"),
    ]

    operations = [
        migrations.RunSQL(SEQUENCE, "DROP SEQUENCE IF EXISTS memories_sequence;"),
        migrations.AddField(
            model_name="memory",
            name="sequence",
            field=models.BigIntegerField(
                db_default=models.Func(
                    models.Value("memories_sequence"), function="nextval", output_field=models.BigIntegerField()
                ),
                editable=False,
            ),
        ),
        migrations.AddField(
            model_name="memory",
            name="session_key",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.functions.comparison.Coalesce(
                    django.db.models.fields.json.KeyTextTransform("session_id", "metadata"),
                    django.db.models.fields.json.KeyTextTransform("session_date", "metadata"),
                ),
                output_field=models.TextField(),
            ),
        ),
        migrations.AddIndex(
            model_name="memory",
            index=models.Index(
                condition=models.Q(("session_key__isnull", False)),
                fields=["agent", "namespace", "session_key", "sequence"],
                name="memories_session_idx",
            ),
        ),
        migrations.RunSQL(FORWARD, REVERSE),
    ]
