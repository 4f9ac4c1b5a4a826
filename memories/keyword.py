"""Keyword ranking: Okapi BM25 over the memories a caller may read, computed in PostgreSQL.

Words are the stemmed lexemes of the `english` text-search configuration (the `search_vector`
column). Document frequencies, memory counts and lengths come from statistics the database keeps
per bucket of memories (migration memories/0009): summed over the buckets the caller may read, so a
word that exists only in memories it cannot see changes none of its scores, and reading them costs
one index look-up per query word.

Scores come from the database's inverted index (`memory_terms`, migration memories/0011): each
query word's postings in the buckets the caller may read, read from the index alone and summed per
memory by a SECURITY DEFINER function that applies the read rule itself. Every query word is
scored and no memory is left out: the result is the exact BM25 top list.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import JSONField, QuerySet

import access

from .models import TEXT_SEARCH_CONFIG, Memory

# Okapi BM25's usual constants: term-frequency saturation and document-length normalisation.
BM25_K1 = 1.2
BM25_B = 0.75


@dataclass
class KeywordQuery:
    """A query's words with their IDF for one reader, that reader's average memory length and scope."""

    terms: list[str]
    idfs: list[float]
    average_length: float
    namespaces: list | None = None  # an operator's namespaces (statistics_scope); None for agents and superusers

    def __bool__(self) -> bool:
        return bool(self.terms)

    def scores_sql(self, depth: int | None, within: list | None = None) -> tuple[str, list]:
        """The FROM item (memory_id, score) of the readable matches, best first, and its parameters."""
        sql = "tmws_keyword_scores(%s::text[], %s::float8[], %s, %s, %s, %s, %s::uuid[], %s::uuid[])"
        return sql, [self.terms, self.idfs, BM25_K1, BM25_B, self.average_length, depth, self.namespaces, within]


def statistics_scope(actor) -> list | None:
    """The namespaces whose buckets an operator's statistics sum (None: all; agents: ignored by the database)."""
    return access.statistics_namespace_ids(actor)


def idf(documents: int, frequency: int) -> float:
    """BM25's inverse document frequency (the form that stays positive for very common words)."""
    frequency = min(frequency, documents)
    return math.log(1.0 + (documents - frequency + 0.5) / (frequency + 0.5))


# The query's words (in the order they first occur) and the reader's statistics, in one round trip.
STATISTICS_SQL = """
WITH words AS (
    SELECT lexeme, positions[1] AS first FROM unnest(to_tsvector(%s::regconfig, %s))
), statistics AS (
    SELECT * FROM tmws_keyword_statistics(ARRAY(SELECT lexeme FROM words), %s::uuid[])
)
SELECT NULL, documents, tokens FROM statistics WHERE term IS NULL
UNION ALL
SELECT * FROM (
    SELECT words.lexeme, coalesce(statistics.documents, 0), NULL::bigint
      FROM words LEFT JOIN statistics ON statistics.term = words.lexeme
     ORDER BY words.first
) ordered
"""


def keyword_query(actor, text: str) -> KeywordQuery:
    """The query's stemmed words, weighted from the statistics of what `actor` may read."""
    with connection.cursor() as cursor:
        cursor.execute(STATISTICS_SQL, [TEXT_SEARCH_CONFIG, text, statistics_scope(actor)])
        rows = cursor.fetchall()
    totals = [(count, tokens) for term, count, tokens in rows if term is None]
    documents, tokens = totals[0] if totals else (0, 0)
    terms = [term for term, _, _ in rows if term is not None]
    counts = [int(count) for term, count, _ in rows if term is not None]
    documents = max(int(documents), 1)
    average_length = max(float(tokens or 0) / documents, 1.0)
    idfs = [idf(documents, count) for count in counts]
    return KeywordQuery(terms, idfs, average_length, statistics_scope(actor))


# The readable matches joined with the caller's candidate rows (its own query, under its own RLS).
# The LIMIT repeats the function's depth for the planner, which otherwise expects a thousand matches
# and hashes every candidate row instead of looking the few matches up by key.
RANKED_SQL = """
WITH scored AS MATERIALIZED (SELECT * FROM {scores} LIMIT %s)
SELECT matched.*, scored.score, (SELECT count(*) FROM scored) AS scored_count
  FROM scored
  JOIN ({matched}) matched ON matched.id = scored.memory_id
 ORDER BY scored.score DESC, matched.created_at DESC, matched.id
 LIMIT %s
"""


def bm25_ranking(queryset: QuerySet, query: KeywordQuery, depth: int, fields: tuple, filtered: bool) -> list:
    """Rows (pk, score, *fields) of the `depth` best BM25 matches in `queryset`, best first (ties: newest first).

    Unless `filtered` (the queryset narrows the readable memories further), the database stops at
    the `depth` best readable matches; otherwise it scores every readable match and the filters pick.
    """
    if not query:
        return []
    rows, scored = _ranked(queryset, query, depth, fields, None if filtered else depth)
    if not filtered and len(rows) < depth and (scored == depth or not rows):
        # Should the queryset and the function ever disagree on what is readable, the queryset left
        # some of the `depth` best out (with no row back, how many were scored is not known):
        # scoring every readable match makes sure none is missing.
        rows, _ = _ranked(queryset, query, depth, fields, None)
    return rows


def _ranked(
    queryset: QuerySet, query: KeywordQuery, depth: int, fields: tuple, scored_depth: int | None
) -> tuple[list, int]:
    """The ranked rows of `queryset`, and how many readable matches the database scored for them."""
    columns = ("id", "created_at", *(field for field in fields if field != "created_at"))
    try:
        sql, params = queryset.order_by().values_list(*columns).query.sql_with_params()
    except EmptyResultSet:  # a filter that can match nothing (an unknown namespace or agent)
        return [], 0
    scores, score_params = query.scores_sql(scored_depth)
    with connection.cursor() as cursor:
        cursor.execute(RANKED_SQL.format(scores=scores, matched=sql), [*score_params, scored_depth, *params, depth])
        names = [column.name for column in cursor.description]
        rows = cursor.fetchall()
    position = {name: index for index, name in enumerate(names)}
    ranked = [(row[position["id"]], row[position["score"]], *(_value(row[position[field]], field) for field in fields))
              for row in rows]
    return ranked, (rows[0][position["scored_count"]] if rows else 0)


def _value(value, field: str):
    """A column read by raw SQL as the ORM gives it (JSON columns arrive as text)."""
    model_field = Memory._meta.get_field(field.removesuffix("_id") if field.endswith("_id") else field)
    if isinstance(model_field, JSONField) and isinstance(value, str):
        return json.loads(value)
    return value
