"""Fixtures of the audit trail's tests: a memory with unmistakable content, and the entries written since a mark."""
from __future__ import annotations

import pytest
from django.db.models import Max

from audit.models import AuditEntry
from memories.contracts import StoreMemory
from memories.services import create_memory

# Stored, shared, restored and deleted by the tests; it must never show up in the audit trail.
SECRET = "zebra-quartz-7731 the vault code is 4471"

ENTRY_FIELDS = ("actor", "actor_kind", "action", "object_type", "object_id", "namespace_path", "before", "after")


def mark() -> int:
    """The id of the newest entry so far (entries written later have greater ids)."""
    return AuditEntry.objects.aggregate(newest=Max("id"))["newest"] or 0


def entries_since(since: int) -> list[dict]:
    """The entries written after `since`, oldest first, as dicts of the fields that describe them."""
    return [
        {name: value for name, value in zip(ENTRY_FIELDS, row, strict=True)}
        for row in AuditEntry.objects.filter(id__gt=since).order_by("id").values_list(*ENTRY_FIELDS)
    ]


@pytest.fixture
def secret_memory(team):
    """A shared memory of the owner in `team`, with SECRET as its content (and a tag)."""
    return create_memory(team["owner"].agent, StoreMemory.parse(
        {"content": SECRET, "access_level": "shared", "context_tags": ["vault"]}))


@pytest.fixture
def superuser_client(operator_user):
    """The superuser `operator`, logged in to the admin."""
    from django.test import Client

    client = Client()
    client.force_login(operator_user)
    return client
