"""The permission matrix: every principal, every access level, every operation on a memory.

Expectations come from the table in ARCHITECTURE section 5 (see tests/access/conftest.py):
readers get 200, others 404; on writes, allowed principals succeed, readers get 403, the rest
404, and a refused write leaves the memory exactly as it was.
"""
from __future__ import annotations

import pytest

from .conftest import KEYWORD, LEVELS, PRINCIPALS, READERS, SHARERS, WRITERS, expected_status

pytestmark = pytest.mark.django_db

MATRIX = [(principal, level) for principal in PRINCIPALS for level in LEVELS]


def _ids(response) -> list[str]:
    body = response.json()
    if "results" in body and body["results"] and "memory" in body["results"][0]:
        return [hit["memory"]["id"] for hit in body["results"]]
    return [item["id"] for item in body["results"]]


@pytest.mark.parametrize(("principal", "level"), MATRIX)
def test_detail(world, principal, level):
    # given
    client = world.clients[principal]
    # when
    response = client.get(f"/api/v2/memories/{world.ids[level]}")
    # then
    expected = 200 if principal in READERS[level] else 404
    assert response.status_code == expected, response.content
    if expected == 200:
        assert response.json()["content"] == world.memories[level].content
    else:
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("principal", "level"), MATRIX)
def test_list(world, principal, level):
    # given
    client = world.clients[principal]
    # when
    response = client.get("/api/v2/memories", {"page_size": 100})
    # then
    assert response.status_code == 200, response.content
    listed = set(_ids(response))
    assert (world.ids[level] in listed) == (principal in READERS[level])
    assert listed == world.visible_ids(principal)


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "keyword"])
@pytest.mark.parametrize(("principal", "level"), MATRIX)
def test_search(searchable_world, principal, level, mode):
    world = searchable_world
    # given
    client = world.clients[principal]
    # when
    response = client.post(
        "/api/v2/memories/search", {"query": KEYWORD[level], "mode": mode, "limit": 20}, format="json"
    )
    # then
    assert response.status_code == 200, response.content
    found = _ids(response)
    assert (world.ids[level] in found) == (principal in READERS[level])
    assert set(found) <= world.visible_ids(principal)
    if mode == "keyword":
        # Each keyword occurs in exactly one memory.
        assert found == ([world.ids[level]] if principal in READERS[level] else [])
    else:
        # Semantic ranking returns every visible embedded memory when the limit allows.
        assert set(found) == world.visible_ids(principal)


@pytest.mark.parametrize(("principal", "level"), MATRIX)
def test_update(world, principal, level):
    # given
    client = world.clients[principal]
    before = world.snapshot(level)
    # when
    response = client.patch(f"/api/v2/memories/{world.ids[level]}", {"content": "tampered"}, format="json")
    # then
    expected = expected_status(principal, level, WRITERS, 200)
    assert response.status_code == expected, response.content
    if expected == 200:
        assert world.snapshot(level)["content"] == "tampered"
    else:
        assert world.snapshot(level) == before


@pytest.mark.parametrize(("principal", "level"), MATRIX)
def test_delete(world, principal, level):
    # given
    client = world.clients[principal]
    before = world.snapshot(level)
    # when
    response = client.delete(f"/api/v2/memories/{world.ids[level]}")
    # then
    expected = expected_status(principal, level, WRITERS, 204)
    assert response.status_code == expected, response.content
    assert world.snapshot(level) == (None if expected == 204 else before)


@pytest.mark.parametrize(("principal", "level"), MATRIX)
def test_share(world, principal, level):
    # given
    client = world.clients[principal]
    before = world.snapshot(level)
    # when
    response = client.post(
        f"/api/v2/memories/{world.ids[level]}/share", {"agent_ids": ["outsider-agent"]}, format="json"
    )
    # then
    # Allowed principals share shared memories; other levels cannot be shared at all (400).
    expected = expected_status(principal, level, SHARERS, 200 if level == "shared" else 400)
    assert response.status_code == expected, response.content
    if expected == 200:
        assert response.json() == {"agent_ids": ["outsider-agent", "sharee-agent"]}
        assert world.snapshot(level)["shared_with"] == ["outsider-agent", "sharee-agent"]
    else:
        assert world.snapshot(level) == before


@pytest.mark.parametrize(("principal", "level"), MATRIX)
def test_unshare(world, principal, level):
    # given
    client = world.clients[principal]
    before = world.snapshot(level)
    # when
    response = client.delete(
        f"/api/v2/memories/{world.ids[level]}/share", {"agent_ids": ["sharee-agent"]}, format="json"
    )
    # then
    expected = expected_status(principal, level, SHARERS, 200)
    assert response.status_code == expected, response.content
    if expected == 200:
        assert response.json() == {"agent_ids": []}
        assert world.snapshot(level)["shared_with"] == []
    else:
        assert world.snapshot(level) == before


def test_shared_agent_reads_only_until_unshared(searchable_world):
    world = searchable_world
    # given
    sharee = world.clients["sharee"]
    assert sharee.get(f"/api/v2/memories/{world.ids['shared']}").status_code == 200
    # when
    response = world.clients["owner"].delete(
        f"/api/v2/memories/{world.ids['shared']}/share", {"agent_ids": ["sharee-agent"]}, format="json"
    )
    # then
    assert response.status_code == 200
    assert sharee.get(f"/api/v2/memories/{world.ids['shared']}").status_code == 404
    found = sharee.post("/api/v2/memories/search", {"query": "standup", "mode": "keyword"}, format="json")
    assert found.json()["results"] == []


@pytest.mark.parametrize(
    ("principal", "namespace", "level", "expected"),
    [
        ("owner", "team", "private", 201),
        ("member", "team", "shared", 201),
        ("descendant", "team", "shared", 403),  # reading a namespace's memories is not membership
        ("ancestor", "team", "private", 403),
        ("outsider", "team", "public", 403),
        ("ns_admin", "team", "shared", 201),  # admins are members
        ("sharee", "team", "private", 403),
        ("admin", "team", "private", 403),  # admin agents write system memories anywhere, not others
        ("admin", "team", "system", 201),
        ("owner", "team", "system", 403),
        ("member", "squad", "private", 403),
        ("descendant", "squad", "private", 201),
    ],
)
def test_agents_create_memories_only_where_they_belong(world, principal, namespace, level, expected):
    # given
    from memories.models import Memory

    count = Memory.objects.count()
    # when
    response = world.clients[principal].post(
        "/api/v2/memories", {"content": "A new note.", "access_level": level, "namespace": namespace}, format="json"
    )
    # then
    assert response.status_code == expected, response.content
    assert Memory.objects.count() == count + (1 if expected == 201 else 0)


def test_a_namespace_admin_cannot_make_another_agents_shared_memory_private(world):
    # given
    before = world.snapshot("shared")
    # when
    response = world.clients["ns_admin"].patch(
        f"/api/v2/memories/{world.ids['shared']}", {"access_level": "private"}, format="json"
    )
    # then
    assert response.status_code == 403, response.content
    assert world.snapshot("shared") == before
