"""Keyword ranking: Okapi BM25 over the memories a caller may read, computed in PostgreSQL.

Words are the stemmed lexemes of the `english` text-search configuration (the `search_vector`
column). Document frequencies, memory counts and lengths come from statistics the database keeps
per bucket of memories (migration memories/0009): summed over the buckets the caller may read, so a
word that exists only in memories it cannot see changes none of its scores, and reading them costs
one index look-up per query word.

Matches come from the GIN index. A query's most common words (by the caller's own frequencies)
would each make the database score a large part of the table while adding little to any score, so
the first pass matches only the rarer words and still scores every word; if a memory holding only
the left-out words could still reach the result (their largest possible contribution is at least
the last kept score), the pass is redone with every word. The result is the exact BM25 top list.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import BooleanField, FloatField, JSONField, QuerySet
from django.db.models.expressions import RawSQL

from namespaces.access import Principal, operator_namespace_ids

from .models import TEXT_SEARCH_CONFIG, Memory

# Okapi BM25's usual constants: term-frequency saturation and document-length normalisation.
BM25_K1 = 1.2
BM25_B = 0.75
# The first pass matches words whose summed document frequency stays within this many memories.
MATCH_BUDGET = 500


@dataclass
class KeywordQuery:
    """A query's words with their IDF for one reader, and that reader's average memory length."""

    terms: list[str]
    idfs: list[float]
    frequencies: list[int]
    average_length: float

    def __bool__(self) -> bool:
        return bool(self.terms)

    def tsquery(self, terms: list[str]) -> str:
        return " | ".join("'" + term.replace("'", "''") + "'" for term in terms)

    def bm25(self) -> RawSQL:
        """The BM25 score of a memory's `search_vector` for this query, as an SQL expression."""
        return RawSQL(
            "tmws_bm25(search_vector, %s::text[], %s::float8[], %s, %s, %s)",
            [self.terms, self.idfs, BM25_K1, BM25_B, self.average_length],
            output_field=FloatField(),
        )

    def bound(self, terms: list[str]) -> float:
        """An upper bound of what `terms` can add to any memory's score."""
        return sum(self.idfs[self.terms.index(term)] * (BM25_K1 + 1) for term in terms)


def statistics_scope(actor) -> list | None:
    """The namespaces whose buckets an operator's statistics sum (None: all; agents: ignored by the database)."""
    principal = Principal.of(actor)
    if principal.agent is not None or principal.is_superuser:
        return None
    if principal.is_operator:
        return list(operator_namespace_ids(principal.user))
    return []


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
    return KeywordQuery(terms, [idf(documents, count) for count in counts], counts, average_length)


def matching(queryset: QuerySet, query: KeywordQuery, terms: list[str], agent_scoped: bool) -> QuerySet:
    """The memories of `queryset` holding any of `terms`, found through the GIN index."""
    tsquery = query.tsquery(terms)
    if agent_scoped:
        # Under RLS the GIN index only helps through the definer function (see migration 0003).
        return queryset.filter(id__in=RawSQL("SELECT tmws_text_match_ids(to_tsquery('simple', %s))", [tsquery]))
    matches = RawSQL("search_vector @@ to_tsquery('simple', %s)", [tsquery], output_field=BooleanField())
    return queryset.annotate(matches=matches).filter(matches=True)


def first_pass_terms(query: KeywordQuery) -> list[str]:
    """The rarest words whose frequencies sum to at most MATCH_BUDGET (always the rarest one)."""
    kept, total = [], 0
    for frequency, term in sorted(zip(query.frequencies, query.terms, strict=True)):
        if kept and total + frequency > MATCH_BUDGET:
            break
        kept.append(term)
        total += frequency
    return kept


# BM25 of every matching row, set-based: one plan with no function call per row (a scalar SQL
# function with a FROM clause is not inlined, and cost tens of microseconds per row).
RANKED_SQL = """
SELECT matched.* , scored.bm25
  FROM ({matched}) matched
 CROSS JOIN LATERAL (
       SELECT coalesce(sum(query.idf * %s * cardinality(word.positions)
                           / (cardinality(word.positions) + %s * (1 - %s + %s * length.tokens / %s))), 0) AS bm25
         FROM unnest(matched.search_vector) word
         JOIN unnest(%s::text[], %s::float8[]) query(term, idf) ON query.term = word.lexeme
        CROSS JOIN (SELECT sum(cardinality(positions)) AS tokens FROM unnest(matched.search_vector)) length
       ) scored
 ORDER BY scored.bm25 DESC, matched.created_at DESC, matched.id
 LIMIT %s
"""


def bm25_ranking(queryset: QuerySet, query: KeywordQuery, depth: int, fields: tuple, agent_scoped: bool) -> list:
    """Rows (pk, score, *fields) of the `depth` best BM25 matches, best first (ties: newest first)."""
    if not query:
        return []
    ordered = sorted(zip(query.frequencies, query.terms, strict=True))
    terms = first_pass_terms(query)
    while True:
        rows = _ranked(matching(queryset, query, terms, agent_scoped), query, depth, fields)
        left_out = [term for _, term in ordered if term not in terms]
        if not left_out or (len(rows) == depth and rows[-1][1] >= query.bound(left_out)):
            return rows
        # A memory holding only left-out words might still belong: take the next rarest word in, or all
        # of them when the matches did not even fill the result (a narrow filter: matching is cheap).
        terms = [*terms, left_out[0]] if len(rows) == depth else query.terms


def _ranked(matches: QuerySet, query: KeywordQuery, depth: int, fields: tuple) -> list:
    columns = ("id", "created_at", "search_vector", *(field for field in fields if field != "created_at"))
    try:
        sql, params = matches.order_by().values_list(*columns).query.sql_with_params()
    except EmptyResultSet:  # a filter that can match nothing (an unknown namespace or agent)
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            RANKED_SQL.format(matched=sql),
            [*params, BM25_K1 + 1, BM25_K1, BM25_B, BM25_B, query.average_length, query.terms, query.idfs, depth],
        )
        names = [column.name for column in cursor.description]
        rows = cursor.fetchall()
    position = {name: index for index, name in enumerate(names)}
    return [(row[position["id"]], row[position["bm25"]], *(_value(row[position[field]], field) for field in fields))
            for row in rows]


def _value(value, field: str):
    """A column read by raw SQL as the ORM gives it (JSON columns arrive as text)."""
    model_field = Memory._meta.get_field(field.removesuffix("_id") if field.endswith("_id") else field)
    if isinstance(model_field, JSONField) and isinstance(value, str):
        return json.loads(value)
    return value
