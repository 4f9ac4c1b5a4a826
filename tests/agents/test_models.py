"""Agent and ApiKey models: enumerations enforced by the database, keys stored only as hashes."""
from __future__ import annotations

import hashlib

import pytest
from django.db import IntegrityError, connection, transaction

from agents.models import Agent, ApiKey


def test_database_rejects_an_unknown_agent_access_level(make_namespace, make_agent):
    # given
    make_namespace("home")
    handle = make_agent("plain-agent", "home")
    # when / then
    with pytest.raises(IntegrityError, match="agents_access_level_valid"), transaction.atomic():
        Agent.objects.filter(pk=handle.agent.pk).update(access_level="root")
    assert Agent.objects.get(pk=handle.agent.pk).access_level == "standard"


def test_api_key_stores_only_a_hash_of_the_secret(make_namespace, make_agent):
    # given
    make_namespace("home")
    handle = make_agent("keyed-agent", "home")
    prefix, lookup, secret = handle.key.split("_", 2)
    # when
    stored = ApiKey.objects.get(user=handle.agent.user)
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(api_keys)::text FROM api_keys WHERE id = %s", [stored.pk])
        raw_row = cursor.fetchone()[0]
    # then
    assert prefix == "tmws"
    assert stored.lookup == lookup
    assert stored.hashed_secret == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in raw_row
    assert handle.key not in raw_row
    assert stored.matches(secret)
    assert not stored.matches(secret + "x")


def test_each_agent_gets_a_linked_user_with_an_unusable_password(make_namespace, make_agent):
    # given
    make_namespace("home")
    # when
    agent = make_agent("user-linked", "home").agent
    # then
    assert agent.user.username == "agent:user-linked"
    assert not agent.user.has_usable_password()
    assert not agent.user.is_staff
