"""Hostile input: every attempt answers 400 (or 404 for a URL naming nothing) or a correct empty
result, never a 500, and stores nothing."""
from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from agents.models import Agent, ApiKey
from memories.models import Memory, MemoryUserObjectPermission
from namespaces.models import Namespace, NamespaceUserObjectPermission

pytestmark = pytest.mark.django_db

EMPTY = "empty"
MEMORIES = "/api/v2/memories"
SEARCH = "/api/v2/memories/search"


def nested(depth: int) -> dict:
    value: object = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


def raw_nested_metadata(depth: int) -> str:
    """A memory body whose metadata nests `depth` levels, written by hand (json.dumps would recurse too)."""
    return '{"content": "x", "namespace": "team", "metadata": ' + '{"k": ' * depth + "1" + "}" * depth + "}"


def memory(**changes) -> dict:
    return {"content": "A perfectly normal note.", "access_level": "private", "namespace": "team", **changes}


INJECTIONS = [
    "../team", "team/../other", "..", "./team", "team' OR '1'='1", "team; DROP TABLE memories;--", 'team" --',
    "TEAM", "te%61m", "t\u0435am", "\uff54\uff45\uff41\uff4d", "team\u200b", "\u202eteam", "team\u0000", "\ud800",
]

CASES = [
    # --- namespace identifiers in bodies -------------------------------------------------------
    *[pytest.param("owner", "post", MEMORIES, memory(namespace=bad), 400, id=f"memory-namespace-{i}")
      for i, bad in enumerate(INJECTIONS)],
    pytest.param("owner", "post", MEMORIES, memory(namespace=["team"]), 400, id="memory-namespace-list"),
    pytest.param("owner", "post", MEMORIES, memory(namespace={"$ne": None}), 400, id="memory-namespace-object"),
    *[pytest.param("operator", "post", "/api/v2/namespaces", {"namespace": bad}, 400, id=f"create-namespace-{i}")
      for i, bad in enumerate([*INJECTIONS, "a/b", "a..b", "", "x" * 65, "-leading", "UPPER"])],
    pytest.param("operator", "post", "/api/v2/namespaces", {"namespace": "fine", "parent_namespace": "../team"}, 400,
                 id="create-namespace-parent-traversal"),
    # --- agent identifiers in bodies -----------------------------------------------------------
    *[pytest.param("operator", "post", MEMORIES, memory(agent_id=bad), 400, id=f"memory-agent-{i}")
      for i, bad in enumerate(["../owner-agent", "owner-agent' OR '1'='1", "owner-agent\u0000", "\ud800", "0wner"])],
    *[pytest.param("operator", "post", "/api/v2/agents", {"agent_id": bad, "namespace": "team"}, 400,
                   id=f"register-agent-{i}")
      for i, bad in enumerate(["../evil", "evil'; DROP TABLE agents;--", "\u00e9vil", "a" * 129, "\u202eevil",
                               "evil\u0000", "", "evil/../admin"])],
    pytest.param("operator", "post", "/api/v2/agents", {"agent_id": "fine-agent", "namespace": "../team"}, 400,
                 id="register-agent-namespace-traversal"),
    *[pytest.param("ns_admin", "post", "/api/v2/namespaces/team/members", {"agent_id": bad}, 400,
                   id=f"add-member-{i}")
      for i, bad in enumerate(["../outsider-agent", "' OR 1=1 --", "outsider-agent\u0000", "\ud800"])],
    pytest.param("ns_admin", "post", "/api/v2/namespaces/team/members", {"agent_id": "outsider-agent", "role": "owner"},
                 400, id="add-member-bad-role"),
    *[pytest.param("owner", "post", "/api/v2/memories/{shared}/share", {"agent_ids": bad}, 400, id=f"share-{i}")
      for i, bad in enumerate([["../outsider-agent"], ["outsider-agent'; --"], ["\ud800"], "outsider-agent",
                               [f"agent-{n}" for n in range(101)], [f"agent-{n}" for n in range(10_000)], [],
                               [{"agent_id": "outsider-agent"}]])],
    # --- identifiers in URLs -------------------------------------------------------------------
    *[pytest.param("owner", "get", path, None, 404, id=f"url-{i}")
      for i, path in enumerate([
          "/api/v2/namespaces/..%2Fteam", "/api/v2/namespaces/%2E%2E", "/api/v2/namespaces/team%00",
          "/api/v2/namespaces/%27%20OR%20%271%27%3D%271", "/api/v2/agents/..%2Fowner-agent",
          "/api/v2/agents/owner-agent%00", "/api/v2/memories/..%2F..%2Fetc%2Fpasswd",
          "/api/v2/memories/%27%20OR%201%3D1", "/api/v2/memories/00000000-0000-0000-0000-000000000000",
      ])],
    *[pytest.param("outsider", "post", path, None, 404, id=f"join-{i}")
      for i, path in enumerate(["/api/v2/namespaces/..%2Fteam/join", "/api/v2/namespaces/team%00/join",
                                "/api/v2/namespaces/%27%20OR%201%3D1/join"])],
    # --- tags ----------------------------------------------------------------------------------
    pytest.param("owner", "post", MEMORIES, memory(context_tags=[f"t{n}" for n in range(51)]), 400, id="tags-51"),
    pytest.param("owner", "post", MEMORIES, memory(context_tags=[f"t{n}" for n in range(100_000)]), 400,
                 id="tags-100000"),
    pytest.param("owner", "post", MEMORIES, memory(context_tags=["x" * 65]), 400, id="tag-too-long"),
    pytest.param("owner", "post", MEMORIES, memory(context_tags=["x" * 1_000_000]), 400, id="tag-megabyte"),
    pytest.param("owner", "post", MEMORIES, memory(context_tags="a,b"), 400, id="tags-not-a-list"),
    pytest.param("owner", "post", MEMORIES, memory(context_tags=[1, 2]), 400, id="tags-not-strings"),
    pytest.param("owner", "post", MEMORIES, memory(context_tags=[["nested"]]), 400, id="tags-nested"),
    pytest.param("owner", "post", MEMORIES, memory(context_tags=["ok\u0000"]), 400, id="tag-nul"),
    pytest.param("owner", "post", MEMORIES, memory(context_tags=["\udfff"]), 400, id="tag-surrogate"),
    pytest.param("owner", "post", MEMORIES, memory(context_tags=["\u200b", " "]), 400, id="tags-blank"),
    # --- metadata ------------------------------------------------------------------------------
    pytest.param("owner", "post", MEMORIES, memory(metadata=nested(9)), 400, id="metadata-depth-9"),
    pytest.param("owner", "post", MEMORIES, memory(metadata=nested(40)), 400, id="metadata-depth-40"),
    pytest.param("owner", "post", MEMORIES, raw_nested_metadata(900), 400, id="metadata-depth-900"),
    pytest.param("owner", "post", MEMORIES, raw_nested_metadata(50_000), 400, id="metadata-depth-50000"),
    pytest.param("owner", "post", MEMORIES, memory(metadata={"a": [[[[[[[[[["deep"]]]]]]]]]]}), 400,
                 id="metadata-deep-lists"),
    pytest.param("owner", "post", MEMORIES, memory(metadata=["not", "an", "object"]), 400, id="metadata-list"),
    pytest.param("owner", "post", MEMORIES, memory(metadata={"a": "nul\u0000"}), 400, id="metadata-nul-value"),
    pytest.param("owner", "post", MEMORIES, memory(metadata={"nul\u0000": 1}), 400, id="metadata-nul-key"),
    pytest.param("owner", "post", MEMORIES, memory(metadata={"a": {"\ud800": 1}}), 400, id="metadata-surrogate-key"),
    # --- content and other memory fields -------------------------------------------------------
    pytest.param("owner", "post", MEMORIES, memory(content="before\u0000after"), 400, id="content-nul"),
    pytest.param("owner", "post", MEMORIES, memory(content="half a pair \ud83d"), 400, id="content-lone-surrogate"),
    pytest.param("owner", "post", MEMORIES, memory(content="\u3000\u2003\n\t"), 400, id="content-unicode-blank"),
    pytest.param("owner", "post", MEMORIES, memory(access_level="private' OR '1'='1"), 400, id="access-level-sql"),
    pytest.param("owner", "post", MEMORIES, memory(access_level="PRIVATE"), 400, id="access-level-case"),
    pytest.param("owner", "post", MEMORIES, memory(memory_category="\u0000"), 400, id="category-nul"),
    pytest.param("owner", "post", MEMORIES, memory(parent_memory_id="' OR 1=1 --"), 400, id="parent-sql"),
    pytest.param("owner", "post", MEMORIES, memory(learning_weight="1e309"), 400, id="weight-string"),
    pytest.param("owner", "post", f"{MEMORIES}/bulk", {"memories": [memory(), memory(), memory(namespace="../team")]},
                 400, id="bulk-one-hostile-item"),
    pytest.param("owner", "patch", "/api/v2/memories/{private}", {"namespace": "../other"}, 400,
                 id="update-namespace-traversal"),
    pytest.param("owner", "patch", "/api/v2/memories/{private}", {"metadata": nested(40)}, 400, id="update-deep"),
    pytest.param("owner", "patch", "/api/v2/memories/{private}", {"content": "x\ud800"}, 400, id="update-surrogate"),
    # --- search: filters that name nothing find nothing ----------------------------------------
    *[pytest.param("owner", "post", SEARCH, {"query": "launch code", "mode": mode, **filters}, EMPTY,
                   id=f"search-{mode}-{name}")
      for mode in ("hybrid", "semantic", "keyword")
      for name, filters in [
          ("namespace-sql", {"namespace": "team' OR '1'='1"}),
          ("namespace-traversal", {"namespace": "../team"}),
          ("namespace-homoglyph", {"namespace": "t\u0435am"}),
          ("agent-sql", {"agent_id": "owner-agent' OR 1=1 --"}),
          ("agent-traversal", {"agent_id": "../owner-agent"}),
          ("tag-sql", {"context_tags": ["' OR 1=1 --"]}),
          ("category-sql", {"memory_category": "general' OR 1=1 --"}),
      ]],
    pytest.param("owner", "post", SEARCH, {"query": "'; DROP TABLE memories; --", "mode": "keyword"}, EMPTY,
                 id="search-query-sql"),
    *[pytest.param("owner", "post", SEARCH, {"query": query, "mode": "keyword"}, EMPTY, id=f"search-no-lexemes-{i}")
      for i, query in enumerate(["\u202e\u200b\u2066", "&|!():*<->", "the"])],
    pytest.param("owner", "post", SEARCH, {"query": "x\u0000"}, 400, id="search-query-nul"),
    pytest.param("owner", "post", SEARCH, {"query": "x\ud800", "mode": "semantic"}, 400, id="search-query-surrogate"),
    pytest.param("owner", "post", SEARCH, {"query": "x", "context_tags": [f"t{n}" for n in range(100_000)]}, 400,
                 id="search-tags-huge"),
    pytest.param("owner", "post", SEARCH, {"query": "x", "access_levels": ["private' OR 1=1"]}, 400,
                 id="search-access-level-sql"),
    pytest.param("owner", "post", SEARCH, {"query": "x", "namespace": {"$gt": ""}}, 400, id="search-namespace-object"),
    pytest.param("owner", "post", SEARCH, {"query": "x", "limit": 10**9}, 400, id="search-limit-huge"),
    pytest.param("owner", "post", SEARCH, {"query": "x" * 10_001}, 400, id="search-query-huge"),
    # --- list filters --------------------------------------------------------------------------
    *[pytest.param("owner", "get", f"{MEMORIES}?{query}", None, EMPTY, id=f"list-{i}")
      for i, query in enumerate([
          "namespace=%27%20OR%20%271%27%3D%271", "namespace=..%2Fteam", "agent_id=..%2Fowner-agent",
          "agent_id=owner-agent%27%20--", "tag=%27%20OR%201%3D1", "memory_category=general%27%20OR%201%3D1",
          "namespace=t%D0%B5am", "agent_id=%ED%A0%80",
      ])],
    *[pytest.param("owner", "get", f"{MEMORIES}?{query}", None, 400, id=f"list-bad-{i}")
      for i, query in enumerate(["namespace=team%00", "tag=%00", "access_level=private%27%20OR%201%3D1",
                                 "parent=%27%20OR%201%3D1"])],
]


def stored_counts() -> dict:
    return {
        "memories": Memory.objects.count(),
        "namespaces": Namespace.objects.count(),
        "agents": Agent.objects.count(),
        "users": get_user_model().objects.count(),
        "keys": ApiKey.objects.count(),
        "shares": MemoryUserObjectPermission.objects.count(),
        "roles": NamespaceUserObjectPermission.objects.count(),
    }


@pytest.mark.parametrize(("principal", "method", "path", "body", "expected"), CASES)
def test_hostile_input_is_refused_or_finds_nothing(world, principal, method, path, body, expected):
    # given
    client = world.clients[principal]
    path = path.format(**world.ids)
    payload = body if isinstance(body, str) or body is None else json.dumps(body)
    before_counts = stored_counts()
    before_memories = {level: world.snapshot(level) for level in world.ids}
    # when
    response = client.generic(method.upper(), path, payload or "", content_type="application/json")
    # then
    if expected == EMPTY:
        assert response.status_code == 200, response.content
        assert response.json()["results"] == []
    else:
        assert response.status_code == expected, response.content
        if response["Content-Type"] == "application/json":  # paths no route matches get Django's plain 404
            assert set(response.json()["error"]) <= {"code", "message", "fields", "request_id"}
    assert stored_counts() == before_counts
    assert {level: world.snapshot(level) for level in world.ids} == before_memories


@pytest.mark.parametrize(
    "content",
    [
        "Emoji \U0001f680 and a family \U0001f468\u200d\U0001f469\u200d\U0001f467",
        "Right-to-left \u05e9\u05dc\u05d5\u05dd and an override \u202e",
        "Combining e\u0301\u0301\u0301 marks and CJK \u8a18\u61b6",
        "'; DROP TABLE memories; -- stays plain text",
        "<script>alert(1)</script>",
    ],
)
def test_odd_but_valid_text_is_stored_verbatim_and_only_for_its_owner(world, content):
    # when
    created = world.clients["owner"].post(MEMORIES, memory(content=content), format="json")
    # then
    assert created.status_code == 201, created.content
    memory_id = created.json()["id"]
    assert Memory.objects.get(pk=memory_id).content == content
    assert world.clients["owner"].get(f"{MEMORIES}/{memory_id}").json()["content"] == content
    assert world.clients["outsider"].get(f"{MEMORIES}/{memory_id}").status_code == 404
