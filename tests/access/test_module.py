"""The access package sits below the apps it rules on: it imports none of them."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

import access
from compat import adapter
from core.errors import Forbidden
from memories.contracts import ShareMemory, StoreMemories

PROJECT_APPS = ("agents", "memories", "namespaces", "workflows", "compat", "tmws_site")


def _project_imports(package: Path) -> set[str]:
    """Every app module imported anywhere in `package` (at module level, inside functions, for type checkers)."""
    found = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level:
                found.add(node.module or "")
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in PROJECT_APPS}


def test_access_imports_no_app_but_for_type_checkers():
    # when: every import of the access package
    imports = _project_imports(Path(access.__file__).parent)
    # then: the one app module it names is for annotations only (models are looked up by label)
    assert imports == {"namespaces.models"}
    assert "if TYPE_CHECKING:\n    from namespaces.models import Namespace" in Path(access.__file__).read_text()


def test_the_reserved_metadata_keys_are_the_importers_keys():
    assert access.RESERVED_METADATA_KEYS["agent"] == (adapter.PERSONA_METADATA_KEY,)
    assert access.RESERVED_METADATA_KEYS["memory"] == (adapter.MEMORY_LEGACY_KEY,)


def test_namespace_sets_are_computed_once_per_request_and_again_after_a_membership_change(
    team, django_assert_num_queries
):
    # given
    from namespaces.contracts import AddMember
    from namespaces.models import Namespace
    from namespaces.services import add_member

    owner = team["owner"].agent
    operator = get_user_model().objects.create_superuser("sets-root", "root@example.com", "unused-pass-123!")
    squad = Namespace.objects.get(namespace="squad")
    with access.request_scope():
        principal = access.Principal.of(owner)
        # when: the same actor again, and its user
        same = (access.Principal.of(owner), access.Principal.of(owner.user))
        first = access.member_namespace_ids(principal)
        with django_assert_num_queries(0):
            again = access.member_namespace_ids(owner)
        add_member(operator, squad, AddMember.parse({"agent_id": owner.agent_id}))
        after = access.member_namespace_ids(owner)
    # then
    assert same == (principal, principal) and same[0] is principal
    assert first == again and squad.pk not in first
    assert squad.pk in after
    # and nothing outlives the request
    assert access.Principal.of(owner) is not principal


def _shared_memories(owner, count: int) -> list:
    from memories.services import bulk_create_memories

    return bulk_create_memories(owner, StoreMemories.parse(
        {"memories": [{"content": f"Shared note {i}.", "access_level": "shared", "namespace": "team"}
                                        for i in range(count)]}))


@pytest.mark.django_db
def test_an_agents_shares_are_named_in_its_read_rule_and_read_again_after_a_share_changes(team):
    # given: two memories of `team`, the first shared with an agent of another namespace
    from memories.models import Memory
    from memories.services import share_memory, unshare_memory

    owner, sharee = team["owner"].agent, team["sharee"].agent
    first, second = _shared_memories(owner, 2)
    share_memory(owner, first, ShareMemory.parse({"agent_ids": ["sharee-agent"]}))
    with access.request_scope():
        # when: the sharee reads, then gets the second one, then loses the first, in one request
        visible = Memory.objects.visible_to(sharee)
        sql = str(visible.query)
        before = set(visible.values_list("pk", flat=True))
        share_memory(owner, second, ShareMemory.parse({"agent_ids": ["sharee-agent"]}))
        during = set(Memory.objects.visible_to(sharee).values_list("pk", flat=True))
        unshare_memory(owner, first, ShareMemory.parse({"agent_ids": ["sharee-agent"]}))
        after = set(Memory.objects.visible_to(sharee).values_list("pk", flat=True))
    # then: the share is named (every arm of the rule can come from an index), never stale
    assert "memoryuserobjectpermission" not in sql and str(first.pk).replace("-", "") in sql.replace("-", "")
    assert before == {first.pk}
    assert during == {first.pk, second.pk}
    assert after == {second.pk}


@pytest.mark.django_db
def test_past_the_named_limit_an_agents_shares_come_from_a_subquery_and_all_stay_visible(team, monkeypatch):
    # given: three memories shared with an agent, one more than may be named
    from memories.models import Memory
    from memories.services import share_memory

    monkeypatch.setattr(access, "MAX_NAMED_SHARES", 2)
    owner, sharee = team["owner"].agent, team["sharee"].agent
    memories = _shared_memories(owner, 4)
    for memory in memories[:3]:
        share_memory(owner, memory, ShareMemory.parse({"agent_ids": ["sharee-agent"]}))
    # when
    visible = Memory.objects.visible_to(sharee)
    # then
    assert access.shared_memory_ids(sharee) is None
    assert "memoryuserobjectpermission" in str(visible.query)
    assert set(visible.values_list("pk", flat=True)) == {memory.pk for memory in memories[:3]}


@pytest.mark.django_db
def test_the_system_is_named_and_a_missing_actor_holds_no_right(team):
    # given
    from namespaces.contracts import CreateNamespace
    from namespaces.models import Namespace
    from namespaces.services import create_namespace

    before = set(Namespace.objects.values_list("namespace", flat=True))
    # when: no actor, then the system
    with pytest.raises(Forbidden):
        create_namespace(None, CreateNamespace.parse({"namespace": "nobodys"}))
    created = create_namespace(access.SYSTEM, CreateNamespace.parse({"namespace": "systems"}))
    # then
    assert not access.can_create_namespace(None, None) and access.can_create_namespace(access.SYSTEM, None)
    assert access.Principal.of(access.SYSTEM) is access.SYSTEM and access.SYSTEM.is_superuser
    assert not access.Principal.of(None).is_operator
    assert set(Namespace.objects.values_list("namespace", flat=True)) == before | {created.namespace}
