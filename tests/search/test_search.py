"""Search modes, ordering, min_similarity, filters and small candidate sets (service level)."""
from __future__ import annotations

import json

import pytest
from django.db import connection, transaction

from access import SYSTEM
from core.db import enter_agent_context, leave_agent_context
from core.errors import InvalidInput
from memories import search as memory_search
from memories.contracts import ShareMemory, UpdateMemory
from memories.search import clean_request, search
from memories.services import delete_memory, share_memory, update_memory
from namespaces.contracts import AddMember
from namespaces.services import add_member

from .conftest import ids

# Similarities meet thresholds and decide orders here: every test runs at both precisions.
pytestmark = pytest.mark.usefixtures("precision")

FACTS = [
    "The staging database is refreshed from production every Sunday night.",
    "Deploys to production need approval from the release manager.",
    "Our office cat is called Biscuit and sleeps on the server rack.",
    "The billing service stores invoices in PostgreSQL.",
    "Lunch on Fridays is pizza from the place around the corner.",
]


@pytest.fixture
def facts(team, store):
    owner = team["owner"].agent
    return team, store(owner, [{"content": text} for text in FACTS], namespace="team", access_level="private")


def run(actor, **body):
    return search(actor, clean_request(body))


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["hybrid", "semantic", "keyword"])
def test_each_mode_puts_the_matching_memory_first_and_reports_itself(facts, mode):
    # given
    team, memories = facts
    # when
    result = run(team["owner"].agent, query="which pet sleeps on the server rack", mode=mode, limit=3)
    # then
    assert result.mode == mode
    assert ids(result)[0] == str(memories[2].pk)
    assert result.took_ms > 0
    scores = [hit.score for hit in result.hits]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.django_db
def test_semantic_mode_orders_by_similarity_and_reports_it(facts):
    # given
    team, memories = facts
    # when
    result = run(team["owner"].agent, query="who signs off on a production release?", mode="semantic", limit=5)
    # then
    assert len(result.hits) == 5
    assert ids(result)[0] == str(memories[1].pk)
    similarities = [hit.similarity for hit in result.hits]
    assert similarities == sorted(similarities, reverse=True)
    assert [hit.score for hit in result.hits] == similarities


@pytest.mark.django_db
def test_semantic_mode_finds_a_paraphrase_that_keyword_mode_cannot(facts):
    # given: no word of the query appears in the memory about the cat
    team, memories = facts
    query = "feline companion"
    # when
    semantic = run(team["owner"].agent, query=query, mode="semantic", limit=1)
    keyword = run(team["owner"].agent, query=query, mode="keyword", limit=5)
    # then
    assert ids(semantic) == [str(memories[2].pk)]
    assert keyword.hits == []


@pytest.mark.django_db
def test_keyword_mode_needs_no_embedding_and_reports_no_similarity(facts):
    # given
    team, memories = facts
    # when
    result = run(team["owner"].agent, query="invoices PostgreSQL", mode="keyword")
    # then
    assert ids(result) == [str(memories[3].pk)]
    assert result.hits[0].similarity is None
    assert result.hits[0].score > 0


@pytest.mark.django_db
def test_hybrid_mode_finds_both_word_and_meaning_matches(facts):
    # given
    team, memories = facts
    # when
    result = run(team["owner"].agent, query="cat", mode="hybrid", limit=5)
    # then
    assert ids(result)[0] == str(memories[2].pk)
    assert all(hit.similarity is not None for hit in result.hits)
    assert len(result.hits) == 5


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["hybrid", "semantic", "keyword"])
def test_min_similarity_drops_weaker_matches_in_every_mode(facts, mode):
    # given
    team, memories = facts
    query = "Deploys to production need approval from the release manager"
    # when
    everything = run(team["owner"].agent, query=query, mode=mode, limit=5, min_similarity=-1)
    strict = run(team["owner"].agent, query=query, mode=mode, limit=5, min_similarity=0.9)
    # then
    assert str(memories[1].pk) in ids(everything)
    assert ids(strict) == [str(memories[1].pk)]
    assert all(hit.similarity >= 0.9 for hit in strict.hits)


@pytest.mark.django_db
def test_min_similarity_still_fills_the_limit_from_the_semantic_side(facts):
    # given: a keyword match that is semantically unrelated must not take a place
    team, memories = facts
    # when
    result = run(team["owner"].agent, query="production database refresh", mode="hybrid", limit=2, min_similarity=0.2)
    # then
    assert len(result.hits) == 2
    assert all(hit.similarity >= 0.2 for hit in result.hits)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "filters, expected",
    [
        ({"namespace": "squad"}, ["squad note about the database"]),
        ({"agent_id": "squad-agent"}, ["squad note about the database"]),
        ({"context_tags": ["db", "ops"]}, ["ops note about the database"]),
        ({"memory_category": "decision"}, ["decision about the database"]),
        ({"access_levels": ["public"]}, ["public note about the database"]),
    ],
)
@pytest.mark.parametrize("mode", ["hybrid", "semantic", "keyword"])
def test_filters_narrow_the_candidates_in_sql(team, store, filters, expected, mode):
    # given
    owner, squad = team["owner"].agent, team["descendant"].agent
    store(owner, [
        {"content": "ops note about the database", "context_tags": ["db", "ops"]},
        {"content": "db note about the database", "context_tags": ["db"]},
        {"content": "decision about the database", "memory_category": "decision"},
        {"content": "public note about the database", "access_level": "public"},
    ], namespace="team", access_level="shared")
    store(squad, [{"content": "squad note about the database"}], namespace="squad", access_level="shared")
    # when
    result = run(squad, query="database note", mode=mode, limit=10, **filters)
    # then
    assert [hit.memory.content for hit in result.hits] == expected


@pytest.mark.django_db
def test_the_tag_match_function_returns_only_the_tagged_memories_the_caller_may_read(team, store):
    # given: tagged memories of every visibility, and an untagged one
    owner, member, outsider = team["owner"].agent, team["member"].agent, team["outsider"].agent
    own, = store(member, [{"content": "mine", "context_tags": ["x", "y"]}], namespace="team", access_level="private")
    shared, untagged = store(owner, [{"content": "team", "context_tags": ["x"]}, {"content": "no tag"}],
                             namespace="team", access_level="shared")
    hidden, = store(owner, [{"content": "owner only", "context_tags": ["x"]}], namespace="team", access_level="private")
    public, = store(outsider, [{"content": "public", "context_tags": ["x"]}], namespace="other", access_level="public")
    elsewhere, = store(outsider, [{"content": "other team", "context_tags": ["x"]}], namespace="other",
                       access_level="shared")
    # when: the member asks under row-level security
    with transaction.atomic():
        enter_agent_context(member)
        with connection.cursor() as cursor:
            cursor.execute("SELECT tmws_tagged_memory_ids(%s::jsonb)", ['["x"]'])
            found = {row[0] for row in cursor.fetchall()}
            cursor.execute("SELECT tmws_tagged_memory_ids(%s::jsonb)", ['["x", "y"]'])
            both = {row[0] for row in cursor.fetchall()}
        leave_agent_context()
    # then
    assert found == {own.pk, shared.pk, public.pk}
    assert both == {own.pk}
    assert {hidden.pk, elsewhere.pk, untagged.pk}.isdisjoint(found)


def tagged_for(agent, tags: list[str]) -> set:
    """What tmws_tagged_memory_ids answers `agent` (None: no agent set) for `tags`."""
    with transaction.atomic():
        if agent is not None:
            enter_agent_context(agent)
        with connection.cursor() as cursor:
            cursor.execute("SELECT tmws_tagged_memory_ids(%s::jsonb)", [json.dumps(tags)])
            found = {row[0] for row in cursor.fetchall()}
        if agent is not None:
            leave_agent_context()
    return found


def postings_of(pk) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tag FROM memory_tags WHERE memory_id = %s ORDER BY tag", [pk])
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db
def test_the_tag_postings_follow_every_change_of_tags_level_namespace_and_shares(team, store, make_namespace):
    # given: the owner's private memory tagged twice over (one tag repeated), which the member may not read
    owner, member = team["owner"].agent, team["member"].agent
    add_member(SYSTEM, make_namespace("annex"), AddMember.parse({"agent_id": owner.agent_id}))
    memory, = store(owner, [{"content": "tagged note", "context_tags": ["x", "y", "x"]}], namespace="team",
                    access_level="private")
    pk = memory.pk
    seen = [postings_of(pk), tagged_for(member, ["x"]), tagged_for(owner, ["x", "y"])]
    # when: shared in the member's namespace, re-tagged, moved out of its reach, shared with it by name, deleted
    update_memory(owner, memory, UpdateMemory.parse({"access_level": "shared"}))
    seen.append(tagged_for(member, ["x"]))
    update_memory(owner, memory, UpdateMemory.parse({"context_tags": ["z"]}))
    seen += [postings_of(pk), tagged_for(member, ["x"]), tagged_for(member, ["z"])]
    update_memory(owner, memory, UpdateMemory.parse({"namespace": "annex"}))
    seen.append(tagged_for(member, ["z"]))
    share_memory(owner, memory, ShareMemory.parse({"agent_ids": [member.agent_id]}))
    seen += [tagged_for(member, ["z"]), tagged_for(None, ["z"])]
    delete_memory(owner, memory)
    seen += [postings_of(pk), tagged_for(owner, ["z"])]
    # then
    assert seen == [
        ["x", "y"], set(), {pk},  # private: its owner only, and each tag once
        {pk},  # shared in the member's namespace
        ["z"], set(), {pk},  # the old tag's posting is gone
        set(),  # in a namespace the member does not read
        {pk}, set(),  # granted by name; nothing without an agent
        [], set(),  # deleted with its postings
    ]


@pytest.mark.django_db
def test_without_an_agent_the_tag_match_function_reads_only_public_and_system_memories(team, store):
    # given
    owner = team["owner"].agent
    private, shared, public = store(owner, [
        {"content": f"{level} tagged", "context_tags": ["t"], "access_level": level}
        for level in ("private", "shared", "public")
    ], namespace="team")
    # when
    found = tagged_for(None, ["t"])
    # then
    assert found == {public.pk}
    assert {private.pk, shared.pk}.isdisjoint(found)


@pytest.mark.django_db
@pytest.mark.parametrize("exact", [True, False])
def test_a_small_candidate_set_returns_limit_results_in_exact_order(team, store, monkeypatch, exact):
    # given: 40 memories, only 6 of them carry the tag asked for
    owner = team["owner"].agent
    items = [{"content": f"Runbook step {i}: restart the cache node number {i}."} for i in range(34)]
    items += [{"content": f"Tagged incident {i}: the cache node {i} ran out of memory.", "context_tags": ["incident"]}
              for i in range(6)]
    store(owner, items, namespace="team", access_level="private")
    monkeypatch.setattr(memory_search, "EXACT_SCAN_THRESHOLD", 1000 if exact else 0)
    request = clean_request({"query": "cache node out of memory", "mode": "semantic", "limit": 5,
                             "context_tags": ["incident"]})
    exact_order = [
        str(row.pk) for row in memory_search.semantic_ranking(
            memory_search.candidates(owner, request), memory_search.query_embedding(request.query), 100, {}, exact=True
        )
    ]
    # when
    result = search(owner, request)
    # then
    assert result.plan["semantic"] == ("exact" if exact else "hnsw_iterative")
    assert len(exact_order) == 6
    assert ids(result) == exact_order[:5]


@pytest.mark.django_db
def test_learning_weight_breaks_a_tie_in_hybrid_mode(team, store):
    # given: the same text twice, one marked more useful
    owner = team["owner"].agent
    plain, useful = store(owner, [
        {"content": "Rotate the API keys every ninety days.", "learning_weight": 1.0},
        {"content": "Rotate the API keys every ninety days.", "learning_weight": 3.0},
    ], namespace="team")
    # when
    result = run(owner, query="how often do we rotate keys", limit=2)
    # then
    assert ids(result) == [str(useful.pk), str(plain.pk)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({"query": ""}, "query"),
        ({"query": "x", "limit": 0}, "limit"),
        ({"query": "x", "limit": 101}, "limit"),
        ({"query": "x", "limit": True}, "limit"),
        ({"query": "x", "mode": "fuzzy"}, "mode"),
        ({"query": "x", "min_similarity": 2}, "min_similarity"),
        ({"query": "x", "access_levels": ["secret"]}, "access_levels"),
        ({"query": "x", "context_tags": "ops"}, "context_tags"),
        ({"query": "x", "namespace": 5}, "namespace"),
    ],
)
def test_clean_request_names_the_bad_field(body, field):
    # when
    with pytest.raises(InvalidInput) as error:
        clean_request(body)
    # then
    assert error.value.field == field


def _plan_nodes(node: dict):
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


@pytest.mark.django_db
def test_the_keyword_ranking_tells_the_planner_how_few_matches_it_joins(team, store):
    # given: a team's memories, a few of them holding the query's word
    owner = team["owner"].agent
    store(owner, [{"content": f"Cache node {i} restarted." if i % 10 == 0 else f"Runbook line {i}."}
                  for i in range(60)], namespace="team", access_level="shared")
    ranked = []

    def capture(execute, sql, params, many, context):
        if "WITH scored AS" in sql:
            ranked.append((sql, params))
        return execute(sql, params, many, context)

    # when: a keyword search runs, and its ranking query is planned again under the same context
    with transaction.atomic():
        enter_agent_context(owner)
        with connection.execute_wrapper(capture):
            result = run(owner, query="cache node", mode="keyword", limit=5)
        sql, params = ranked[0]
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
            plan = cursor.fetchone()[0]
        leave_agent_context()
    # then: the planner expects no more matches than the ranking's depth (not a function's default
    # thousand, which made it hash every readable row to join the few matches)
    scored = [node for node in _plan_nodes(plan[0]["Plan"]) if node.get("CTE Name") == "scored"
              or node.get("Subplan Name") == "CTE scored"]
    assert len(result.hits) == 5
    assert scored and max(node["Plan Rows"] for node in scored) <= 5


@pytest.mark.django_db(transaction=True)  # VACUUM sets the visibility map, as in service: outside a transaction
def test_an_agents_own_memories_are_ranked_exactly_from_the_owner_index_alone(team, store):
    # given: the owner's memories, vacuumed, and its exact semantic search among them captured
    owner = team["owner"].agent
    store(owner, [{"content": f"Runbook line {i} about the cache."} for i in range(30)], namespace="team",
          access_level="private")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) memories")
    ranked = []

    def capture(execute, sql, params, many, context):
        if "<=>" in sql and "LIMIT" in sql:
            ranked.append((sql, params))
        return execute(sql, params, many, context)

    request = clean_request({"query": "cache", "mode": "semantic", "limit": 5, "agent_id": owner.agent_id})
    # when: the ranking runs as the agent, and is planned again with only the key and the owner index left (in
    # this transaction only: on a table this small any index would do) and scans of the whole table disabled
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("""
                SELECT string_agg(indexrelid::regclass::text, ', ') FROM pg_index
                 WHERE indrelid = 'memories'::regclass AND NOT indisprimary
                   AND indexrelid <> 'memories_owner_vectors'::regclass""")
            cursor.execute(f"DROP INDEX {cursor.fetchone()[0]}")
        enter_agent_context(owner)
        with connection.execute_wrapper(capture):
            rows = memory_search.semantic_ranking(memory_search.candidates(owner, request),
                                                  memory_search.query_embedding(request.query), 5, {}, exact=True)
        sql, params = ranked[0]
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off")
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
            plan = cursor.fetchone()[0]
        leave_agent_context()
        transaction.set_rollback(True)
    # then: the ranking reads the owner's memories by an index-only scan of memories_owner_vectors (the read rule,
    # the row-level-security policy and the filters test only columns it holds); the winners are read by key
    scans = {(node["Node Type"], node.get("Index Name"), node.get("Disabled"))
             for node in _plan_nodes(plan[0]["Plan"]) if node.get("Relation Name") == "memories"}
    assert len(rows) == 5
    assert scans == {("Index Only Scan", "memories_owner_vectors", False), ("Index Scan", "memories_pkey", False)}


def _estimated_rows(queryset) -> int:
    sql, params = queryset.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        return int(cursor.fetchone()[0][0]["Plan"]["Plan Rows"])


@pytest.mark.django_db
def test_the_plan_choice_estimate_counts_the_read_rule_once(team, store, monkeypatch):
    # given: memories at every level in and out of the member's reach
    owner, member, outsider = team["owner"].agent, team["member"].agent, team["outsider"].agent
    store(owner, [{"content": f"Team note {i}.", "access_level": "shared"} for i in range(30)], namespace="team")
    store(owner, [{"content": f"Owner note {i}.", "access_level": "private"} for i in range(30)], namespace="team")
    store(outsider, [{"content": f"Other note {i}.", "access_level": "shared"} for i in range(30)], namespace="other")
    store(outsider, [{"content": f"Open note {i}.", "access_level": "public"} for i in range(5)], namespace="other")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE memories")
    monkeypatch.setattr(memory_search, "_estimates", {})
    request = clean_request({"query": "note"})
    with transaction.atomic():
        enter_agent_context(member)
        queryset = memory_search.candidates(member, request).embedded_by_configured_model()
        # when
        estimate = memory_search.estimated_candidates(queryset)
        under_policy = _estimated_rows(queryset)
        leave_agent_context()
        rule_alone = _estimated_rows(queryset)
    # then: the planner's figure for the read rule alone, not the policy's selectivity applied on top of it
    assert estimate == rule_alone
    assert under_policy < rule_alone
