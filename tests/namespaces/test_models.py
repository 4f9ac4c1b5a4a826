"""Namespace model: materialised paths, depth, and database constraints."""
from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from namespaces.contracts import UpdateNamespace
from namespaces.models import Namespace
from namespaces.services import update_namespace


def test_path_and_depth_follow_the_tree(make_namespace):
    # when
    make_namespace("company")
    make_namespace("team", parent="company")
    squad = make_namespace("squad", parent="team")
    # then
    assert list(Namespace.objects.values_list("namespace", "path", "depth")) == [
        ("company", "company", 0),
        ("team", "company/team", 1),
        ("squad", "company/team/squad", 2),
    ]
    assert squad.ancestor_paths() == ["company", "company/team"]


def test_moving_a_namespace_rewrites_the_paths_of_its_subtree(make_namespace, operator_user):
    # given
    make_namespace("company")
    make_namespace("elsewhere")
    team = make_namespace("team", parent="company")
    make_namespace("squad", parent="team")
    # when
    update_namespace(operator_user, team, UpdateNamespace.parse({"parent_namespace": "elsewhere"}))
    # then
    assert dict(Namespace.objects.values_list("namespace", "path")) == {
        "company": "company",
        "elsewhere": "elsewhere",
        "team": "elsewhere/team",
        "squad": "elsewhere/team/squad",
    }
    assert Namespace.objects.get(namespace="squad").depth == 2


def test_a_namespace_cannot_move_under_its_own_descendant(make_namespace, operator_user):
    # given
    team = make_namespace("team")
    make_namespace("squad", parent="team")
    # when / then
    from core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="under itself or its descendants"):
        update_namespace(operator_user, team, UpdateNamespace.parse({"parent_namespace": "squad"}))
    assert Namespace.objects.get(namespace="team").path == "team"


@pytest.mark.parametrize(
    ("field", "value", "constraint"),
    [
        ("access_policy", "secret", "namespaces_access_policy_valid"),
        ("namespace", "Upper-Case", "namespaces_slug_valid"),
        ("namespace", "has/slash", "namespaces_slug_valid"),
        ("namespace", "", "namespaces_slug_valid"),
    ],
)
def test_database_rejects_bad_namespace_values(db, field, value, constraint):
    # given
    values = {"namespace": "fine", "path": "fine", "access_policy": "open", field: value}
    # when / then
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        Namespace.objects.create(**values)
    assert Namespace.objects.count() == 0


def test_database_rejects_a_namespace_that_is_its_own_parent(make_namespace):
    # given
    loop = make_namespace("loop")
    # when / then
    with pytest.raises(IntegrityError, match="namespaces_not_own_parent"), transaction.atomic():
        Namespace.objects.filter(pk=loop.pk).update(parent=loop.pk)
