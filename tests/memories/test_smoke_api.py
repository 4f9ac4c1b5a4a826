"""A first end-to-end pass through the memory API with the real model."""
from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_owner_creates_embeds_and_finds_a_private_memory(team, django_capture_on_commit_callbacks):
    # given
    owner, outsider = team["owner"], team["outsider"]
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.client.post(
            "/api/v2/memories",
            {"content": "Deploys to staging need the team lead's approval.", "access_level": "private",
             "namespace": "team"},
            format="json",
        )
    # then
    assert response.status_code == 201, response.content
    memory_id = response.json()["id"]
    detail = owner.client.get(f"/api/v2/memories/{memory_id}").json()
    assert detail["embedding_status"] == "ready"
    found = owner.client.post("/api/v2/memories/search", {"query": "who approves staging deploys?"}, format="json")
    assert [hit["memory"]["id"] for hit in found.json()["results"]] == [memory_id]
    assert outsider.client.get(f"/api/v2/memories/{memory_id}").status_code == 404
    hidden = outsider.client.post("/api/v2/memories/search", {"query": "who approves staging deploys?"}, format="json")
    assert hidden.json()["results"] == []
