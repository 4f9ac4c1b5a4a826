"""The ranking itself on small fixed corpora: BM25 against a hand computation, statistics that only
count what the caller may read, neighbouring turns as context, and the fused order."""
from __future__ import annotations

import math

import pytest

from memories import search as memory_search
from memories.contracts import ShareMemory
from memories.keyword import BM25_B, BM25_K1
from memories.models import Memory
from memories.neighbours import adjacency, neighbour_windows
from memories.search import clean_request, search

from .conftest import ids

# Similarities meet thresholds and decide orders here: every test runs at both precisions.
pytestmark = pytest.mark.usefixtures("precision")

# Words chosen so the english stemmer leaves one lexeme per word; lengths 2, 3 and 4 tokens.
TINY = ["apple banana", "apple apple cherry", "cherry date elderberry fig"]


def run(actor, **body):
    return search(actor, clean_request(body))


def keyword_scores(actor, query: str) -> dict:
    return {str(hit.memory.pk): hit.score for hit in run(actor, query=query, mode="keyword", limit=10).hits}


def bm25(tf: int, length: int, average: float, idf: float) -> float:
    return idf * tf * (BM25_K1 + 1) / (tf + BM25_K1 * (1 - BM25_B + BM25_B * length / average))


@pytest.fixture
def tiny(team, store):
    owner = team["owner"].agent
    return team, store(owner, [{"content": text} for text in TINY], namespace="team", access_level="private")


@pytest.mark.django_db
def test_keyword_mode_scores_okapi_bm25_as_computed_by_hand(tiny):
    # given three memories of 2, 3 and 4 tokens; "apple" in two of them (once, twice)
    team, memories = tiny
    idf = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))
    # when
    scores = keyword_scores(team["owner"].agent, "apple")
    # then: the memory saying it twice leads; the one without it is not a match
    assert list(scores) == [str(memories[1].pk), str(memories[0].pk)]
    assert scores[str(memories[1].pk)] == pytest.approx(bm25(2, 3, 3.0, idf), abs=1e-9)
    assert scores[str(memories[0].pk)] == pytest.approx(bm25(1, 2, 3.0, idf), abs=1e-9)


@pytest.mark.django_db
def test_keyword_mode_adds_every_query_word_and_favours_short_memories(tiny):
    # given
    team, memories = tiny
    cherry_idf = apple_idf = math.log(1 + 1.5 / 2.5)
    # when: "cherry" is in the second and third memory, "apple" in the first two
    scores = keyword_scores(team["owner"].agent, "apple cherry")
    # then
    assert list(scores) == [str(memories[1].pk), str(memories[0].pk), str(memories[2].pk)]
    assert scores[str(memories[1].pk)] == pytest.approx(
        bm25(2, 3, 3.0, apple_idf) + bm25(1, 3, 3.0, cherry_idf), abs=1e-9
    )
    assert scores[str(memories[2].pk)] == pytest.approx(bm25(1, 4, 3.0, cherry_idf), abs=1e-9)


@pytest.mark.django_db
def test_case11_keyword_statistics_ignore_invisible_memories(tiny, store, make_namespace):
    # given the owner's scores for a query
    team, memories = tiny
    owner, outsider = team["owner"].agent, team["outsider"].agent
    before = keyword_scores(owner, "apple zanzibar")
    # when other agents write the query's words where the owner cannot read them: private
    # memories in another namespace, shared memories of a namespace the owner is not in
    store(outsider, [{"content": "zanzibar apple"}, {"content": "apple " * 5}], namespace="other",
          access_level="private")
    store(outsider, [{"content": "zanzibar zanzibar"}], namespace="other", access_level="shared")
    store(team["member"].agent, [{"content": "zanzibar apple fig"}], namespace="team", access_level="private")
    after = keyword_scores(owner, "apple zanzibar")
    # then nothing in the owner's scores changed, to the last bit
    assert after == before
    # and a memory the owner may read does move them (the statistics are live)
    store(outsider, [{"content": "zanzibar apple"}], namespace="other", access_level="public")
    moved = keyword_scores(owner, "apple zanzibar")
    assert moved[str(memories[1].pk)] != before[str(memories[1].pk)]


@pytest.mark.django_db
def test_statistics_follow_deletes_and_edits(tiny):
    # given
    team, memories = tiny
    owner = team["owner"].agent
    before = keyword_scores(owner, "apple")
    # when a memory that does not hold the word changes words and then goes away
    Memory.objects.filter(pk=memories[2].pk).update(content="grape")
    edited = keyword_scores(owner, "apple")
    Memory.objects.filter(pk=memories[2].pk).delete()
    deleted = keyword_scores(owner, "apple")
    # then the average length follows the edit, and the memory count the delete
    idf_two_of_two = math.log(1 + 0.5 / 2.5)
    assert edited[str(memories[1].pk)] == pytest.approx(bm25(2, 3, 6 / 3, math.log(1 + 1.5 / 2.5)), abs=1e-9)
    assert deleted[str(memories[1].pk)] == pytest.approx(bm25(2, 3, 5 / 2, idf_two_of_two), abs=1e-9)
    assert before != edited != deleted


SESSION = [
    "Jon: Are you still going to the pottery class on Tuesdays?",
    "Gina: Yes! Last week I finished a blue vase with a wave pattern.",
    "Jon: That sounds lovely.",
]


@pytest.mark.django_db
def test_neighbours_are_the_nearest_visible_memories_of_the_same_session(team, store):
    # given two sessions written interleaved, a memory without a session, and another agent's turn
    owner, member = team["owner"].agent, team["member"].agent
    a1, b1, a2, loose, a3 = store(owner, [
        {"content": "first turn", "metadata": {"session_date": "1 May"}},
        {"content": "other session", "metadata": {"session_date": "2 May"}},
        {"content": "second turn", "metadata": {"session_date": "1 May"}},
        {"content": "no session"},
        {"content": "third turn", "metadata": {"session_id": "1 May"}},
    ], namespace="team", access_level="private")
    store(member, [{"content": "member turn", "metadata": {"session_date": "1 May"}}], namespace="team",
          access_level="shared")
    visible = Memory.objects.visible_to(owner)
    # when
    windows = neighbour_windows(visible, [a1.pk, a2.pk, loose.pk])
    # then
    assert windows == {a1.pk: ([], [a2.pk, a3.pk]), a2.pk: ([a1.pk], [a3.pk])}
    assert adjacency(windows) == {a1.pk: {a2.pk}, a2.pk: {a1.pk, a3.pk}, a3.pk: {a2.pk}}
    assert b1.pk not in adjacency(windows)


@pytest.mark.django_db
def test_hybrid_reads_a_turn_with_its_neighbours(team, store):
    # given the same three turns once inside a session and once without one (another agent)
    owner, member = team["owner"].agent, team["member"].agent
    in_session = store(owner, [{"content": text, "metadata": {"session_date": "7 May 2023"}} for text in SESSION],
                       namespace="team", access_level="private")
    loose = store(member, [{"content": text} for text in SESSION], namespace="team", access_level="private")
    query = "What did Gina make in her pottery class?"
    # when
    with_context = run(owner, query=query, mode="hybrid", limit=3)
    without = run(member, query=query, mode="hybrid", limit=3)
    # then the answer (the turn after the one naming the class) gains its neighbour's score
    assert ids(with_context)[:2] == [str(in_session[0].pk), str(in_session[1].pk)]
    assert [hit.score for hit in with_context.hits][1] > [hit.score for hit in without.hits][
        ids(without).index(str(loose[1].pk))
    ]


FACTS = [
    "The staging database is refreshed from production every Sunday night.",
    "Deploys to production need approval from the release manager.",
    "Our office cat is called Biscuit and sleeps on the server rack.",
    "The billing service stores invoices in PostgreSQL.",
    "Lunch on Fridays is pizza from the place around the corner.",
]


@pytest.mark.django_db
def test_hybrid_order_fuses_normalised_bm25_with_similarity(team, store):
    # given
    owner = team["owner"].agent
    memories = store(owner, [{"content": text} for text in FACTS], namespace="team", access_level="private")
    position = {str(memory.pk): index for index, memory in enumerate(memories)}
    # when
    result = run(owner, query="when is the production database refreshed", mode="hybrid", limit=5)
    # then
    assert [position[pk] for pk in ids(result)] == EXPECTED_FUSED_ORDER
    best = result.hits[0]
    # the best memory holds the query's best BM25 score (1 once normalised) and its own similarity
    factor = memory_search.learning_and_recency_factor(best.memory, best.memory.created_at)
    assert best.score == pytest.approx(
        (memory_search.KEYWORD_SHARE + (1 - memory_search.KEYWORD_SHARE) * best.similarity) * factor, rel=1e-3
    )


EXPECTED_FUSED_ORDER = [0, 1, 3, 2, 4]


@pytest.mark.django_db
def test_a_scoped_operator_weighs_words_from_its_namespaces_only(tiny, store):
    # given an operator who may read the team namespace only, and the owner's scores before
    from django.contrib.auth import get_user_model
    from guardian.shortcuts import assign_perm

    from namespaces.models import Namespace

    team, memories = tiny
    staff = get_user_model().objects.create_user("scoped", "scoped@example.com", "pass-123!", is_staff=True)
    assign_perm("view_namespace", staff, Namespace.objects.get(namespace="team"))
    before = keyword_scores(staff, "apple")
    owner_before = keyword_scores(team["owner"].agent, "apple")
    # when memories with the word appear in a namespace outside its scope
    store(team["outsider"].agent, [{"content": "apple"}, {"content": "apple pie"}], namespace="other",
          access_level="public")
    # then its scores stay; the owner, who reads public memories everywhere, sees them move
    assert keyword_scores(staff, "apple") == before
    assert before == owner_before
    assert keyword_scores(team["owner"].agent, "apple") != owner_before


@pytest.mark.django_db
def test_keyword_mode_finds_what_no_bucket_holds_and_scores_it_once(team, store):
    # given a shared memory of the team, and a reader that reads the team namespace already
    from memories.services import share_memory

    owner, sharee, ns_admin = team["owner"].agent, team["sharee"].agent, team["ns_admin"].agent
    [note] = store(owner, [{"content": "walrus tusk ivory"}], namespace="team", access_level="shared")
    before = keyword_scores(ns_admin, "walrus")
    assert keyword_scores(sharee, "walrus") == {}
    # when it is shared one by one with an outsider and with that reader
    share_memory(owner, note, ShareMemory.parse({"agent_ids": [sharee.agent_id, ns_admin.agent_id]}))
    # then the outsider finds it, and the reader's score is counted once, as before
    assert list(keyword_scores(sharee, "walrus")) == [str(note.pk)]
    assert keyword_scores(ns_admin, "walrus") == before
    assert list(before) == [str(note.pk)]


@pytest.mark.django_db
def test_keyword_mode_finds_own_shared_memories_in_a_namespace_no_longer_read(team, store):
    # given an agent's shared memory in a namespace it is a member of
    from namespaces.models import Namespace
    from namespaces.services import remove_member
    from tests.conftest import _system_operator

    ns_admin = team["ns_admin"].agent
    [note] = store(ns_admin, [{"content": "narwhal horn"}], namespace="team", access_level="shared")
    # when it leaves the namespace (it still owns, and so reads, the memory)
    remove_member(_system_operator(), Namespace.objects.get(namespace="team"), ns_admin)
    # then keyword search still finds it, with the same words
    assert list(keyword_scores(ns_admin, "narwhal horn")) == [str(note.pk)]
    assert list(keyword_scores(team["outsider"].agent, "narwhal")) == []
