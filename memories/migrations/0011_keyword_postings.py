"""An inverted index for BM25: one row per (memory, word) with the word's frequency in the memory.

Scoring a memory from its `search_vector` means unnesting the whole vector, row by row, after
fetching the (wide) memory row and checking its visibility: about 50 microseconds a memory, so a
common word over a large namespace cost tens of milliseconds. `memory_terms` holds, for every word
of every memory, its frequency, the memory's length, its statistics bucket (migration 0009) and its
creation time, ordered by word and bucket: a query reads only the postings of its own words in the
buckets the caller may read, from the index alone, and sums BM25 per memory.

Shared memories now have a bucket per namespace *and owner*, like private ones: an agent reads its
own shared memories wherever they are (even in a namespace it no longer reads), and the buckets now
say so. The statistics are rebuilt with that partition; tmws_readable_buckets states, once, which
buckets a reader reads, for the statistics and the scores.

The same statement triggers that keep the statistics keep the postings (rows whose words, bucket or
creation time changed are re-indexed). The table is read only through tmws_keyword_scores, a
SECURITY DEFINER function that applies the read rule itself: the buckets the caller may read, plus
the shared memories granted to it one by one (which no bucket expresses). The agent role holds no
grant on the table.
"""
from django.db import migrations

AGENT_ROLE = "tmws_agent"

# Migration 0009's statistics SQL and its builders, copied as 0009 wrote them: this migration
# rebuilds the trigger functions with them, and its reverse restores 0009's. Copies, not imports,
# so no later edit elsewhere changes what this one does. 0009's bucket owner and changed rows are
# named STATISTICS_* here; this migration's own follow below.
NO_AGENT = "00000000-0000-0000-0000-000000000000"

# The bucket of a row of `memories` (or of a transition table with its columns).
BUCKET_KIND = "(CASE WHEN access_level IN ('public', 'system') THEN 'open' ELSE access_level END)"
STATISTICS_BUCKET_AGENT = f"(CASE WHEN access_level = 'private' THEN agent_id ELSE '{NO_AGENT}'::uuid END)"


def apply_rows(rows: str, sign: int, bucket_agent: str = STATISTICS_BUCKET_AGENT) -> str:
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


STATISTICS_CHANGED = """(SELECT {side}.* FROM old_rows JOIN new_rows USING (id)
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
    create: str = "CREATE", bucket_agent: str = STATISTICS_BUCKET_AGENT, changed: str = STATISTICS_CHANGED,
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


# The owner of a bucket: private and shared memories are bucketed by owner, open ones are not.
BUCKET_AGENT = (f"(CASE WHEN access_level IN ('private', 'shared') THEN coalesce(agent_id, '{NO_AGENT}'::uuid)"
                f" ELSE '{NO_AGENT}'::uuid END)")


def add_postings(rows: str) -> str:
    """SQL indexing the words of the memories of the FROM item `rows` (after their buckets exist)."""
    kind = BUCKET_KIND.replace("access_level", "row_.access_level")
    agent = BUCKET_AGENT.replace("access_level", "row_.access_level").replace("agent_id", "row_.agent_id")
    return f"""
    INSERT INTO memory_terms (term, bucket_id, memory_id, frequency, length, created_at)
    SELECT word.lexeme, bucket.id, row_.id, cardinality(word.positions), length.tokens, row_.created_at
      FROM {rows} row_
      JOIN memory_term_buckets bucket
        ON bucket.kind = {kind} AND bucket.namespace_id = row_.namespace_id AND bucket.agent_id = {agent}
     CROSS JOIN LATERAL (SELECT tmws_token_count(row_.search_vector) AS tokens OFFSET 0) length  -- once a memory
     CROSS JOIN LATERAL unnest(row_.search_vector) word;
"""


def remove_postings(rows: str) -> str:
    return f"DELETE FROM memory_terms WHERE memory_id IN (SELECT id FROM {rows} row_);"


CHANGED = """(SELECT {side}.* FROM old_rows JOIN new_rows USING (id)
     WHERE (old_rows.search_vector, old_rows.access_level, old_rows.namespace_id, old_rows.agent_id,
            old_rows.created_at)
           IS DISTINCT FROM (new_rows.search_vector, new_rows.access_level, new_rows.namespace_id,
                             new_rows.agent_id, new_rows.created_at))"""


def triggers(postings: bool) -> str:
    """The statement triggers of migration 0009, keeping the postings and owned buckets when `postings` is set."""
    if not postings:
        return statistics_triggers("CREATE OR REPLACE")
    changed_old, changed_new = CHANGED.format(side="old_rows"), CHANGED.format(side="new_rows")
    return statistics_triggers(
        "CREATE OR REPLACE", BUCKET_AGENT, CHANGED,
        inserted=add_postings("new_rows"),
        deleted=remove_postings("old_rows"),
        moved=remove_postings(changed_old) + add_postings(changed_new),
        truncated="memory_terms, ",
    )


def rebuild_statistics(bucket_agent: str) -> str:
    return f"""
TRUNCATE memory_term_documents, memory_term_buckets;
{apply_rows("memories", 1, bucket_agent)}
"""


READABLE_BUCKETS = """
-- The buckets the current reader reads: an agent (app.current_agent_id set) the open buckets, its own
-- and the shared buckets of the namespaces it reads, whatever `namespaces` says; otherwise (operators,
-- whose scope the service resolves) the buckets of `namespaces`, NULL meaning all.
CREATE FUNCTION tmws_readable_buckets(namespaces uuid[]) RETURNS bigint[]
LANGUAGE sql STABLE SET search_path = public AS $$
    WITH reader AS MATERIALIZED (
        SELECT agent, CASE WHEN agent IS NULL THEN NULL ELSE tmws_readable_namespace_ids(agent) END AS readable
          FROM (SELECT tmws_current_agent() AS agent) current_)
    SELECT ARRAY(
        SELECT bucket.id FROM memory_term_buckets bucket, reader
         WHERE reader.agent IS NULL AND (namespaces IS NULL OR bucket.namespace_id = ANY (namespaces))
        UNION ALL
        SELECT bucket.id FROM memory_term_buckets bucket, reader
         WHERE reader.agent IS NOT NULL AND bucket.kind = 'open'
        UNION ALL
        SELECT bucket.id FROM memory_term_buckets bucket, reader
         WHERE bucket.agent_id = reader.agent
        UNION ALL
        SELECT bucket.id FROM memory_term_buckets bucket, reader
         WHERE bucket.kind = 'shared' AND bucket.namespace_id = ANY (reader.readable)
           AND bucket.agent_id <> reader.agent)
$$;
REVOKE ALL ON FUNCTION tmws_readable_buckets(uuid[]) FROM PUBLIC;
CREATE INDEX memory_term_buckets_agent ON memory_term_buckets (agent_id);

CREATE OR REPLACE FUNCTION tmws_keyword_statistics(terms text[], namespaces uuid[] DEFAULT NULL)
RETURNS TABLE (term text, documents bigint, tokens bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    WITH visible AS MATERIALIZED (
        SELECT bucket.id, bucket.documents, bucket.tokens
          FROM memory_term_buckets bucket
         WHERE bucket.id = ANY (tmws_readable_buckets(namespaces)))
""" + STATISTICS_SUMS + "$$;\n"

SCORES = """
-- Okapi BM25 of the memories the reader may read that hold any of `terms` (weighted by `idfs`),
-- best first (ties: newest first), at most `depth` of them (NULL: all). With `within`, only those
-- memories are scored. Readers and `namespaces` as for tmws_readable_buckets, plus the shared
-- memories granted to an agent one by one.
CREATE FUNCTION tmws_keyword_scores(
    terms text[], idfs float8[], k1 float8, b float8, average_length float8, depth integer,
    namespaces uuid[] DEFAULT NULL, within uuid[] DEFAULT NULL
) RETURNS TABLE (memory_id uuid, score float8)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    WITH buckets AS MATERIALIZED (SELECT tmws_readable_buckets(namespaces) AS ids),
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
    query AS (SELECT * FROM unnest(terms, idfs) query(term, idf)),
    postings AS (
        SELECT posting.*
          FROM memory_terms posting, buckets
         WHERE within IS NULL AND posting.term = ANY (terms) AND posting.bucket_id = ANY (buckets.ids)
        UNION ALL
        SELECT posting.*
          FROM memory_terms posting, buckets, granted
         WHERE within IS NULL AND posting.memory_id = ANY (granted.ids) AND posting.term = ANY (terms)
           AND NOT (posting.bucket_id = ANY (buckets.ids))
        UNION ALL
        SELECT posting.*
          FROM memory_terms posting, buckets, granted
         WHERE within IS NOT NULL AND posting.memory_id = ANY (within) AND posting.term = ANY (terms)
           AND (posting.bucket_id = ANY (buckets.ids) OR posting.memory_id = ANY (granted.ids))
    )
    SELECT postings.memory_id,
           sum(query.idf * (k1 + 1) * postings.frequency
               / (postings.frequency + k1 * (1 - b + b * postings.length / average_length))) AS score
      FROM postings JOIN query ON query.term = postings.term
     GROUP BY postings.memory_id, postings.created_at
     ORDER BY score DESC, postings.created_at DESC, postings.memory_id
     LIMIT depth
$$;
"""

FORWARD = f"""
CREATE TABLE memory_terms (
    term text NOT NULL,
    bucket_id bigint NOT NULL,
    memory_id uuid NOT NULL,
    frequency integer NOT NULL,
    length integer NOT NULL,
    created_at timestamptz NOT NULL
);
REVOKE ALL ON memory_terms FROM PUBLIC;
REVOKE ALL ON memory_terms FROM {AGENT_ROLE};
{rebuild_statistics(BUCKET_AGENT)}
{add_postings("memories")}
CREATE INDEX memory_terms_search ON memory_terms (term, bucket_id) INCLUDE (memory_id, frequency, length, created_at);
CREATE UNIQUE INDEX memory_terms_memory ON memory_terms (memory_id, term);
{triggers(postings=True)}
{READABLE_BUCKETS}
{SCORES}
-- Scores come from the postings now: the per-row function is not used any more.
DROP FUNCTION tmws_bm25(tsvector, text[], float8[], float8, float8, float8);
"""

REVERSE = f"""
{BM25_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")}
DROP FUNCTION IF EXISTS tmws_keyword_scores(text[], float8[], float8, float8, float8, integer, uuid[], uuid[]);
{KEYWORD_STATISTICS_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")}
DROP FUNCTION IF EXISTS tmws_readable_buckets(uuid[]);
DROP INDEX IF EXISTS memory_term_buckets_agent;
{triggers(postings=False)}
DROP TABLE IF EXISTS memory_terms;
{rebuild_statistics(STATISTICS_BUCKET_AGENT)}
"""


class Migration(migrations.Migration):

    dependencies = [
        ("memories", "0010_access_feedback_votes"),
    ]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
