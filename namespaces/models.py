"""Namespaces: the hierarchical spaces memories live in, with membership held as guardian permissions."""
from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from access.choices import ROLE_PERMISSIONS, AccessPolicy, Role  # noqa: F401  (namespaces name them here too)
from core.models import TREE_ORDER, BaseModel, choices_check  # noqa: F401  (TREE_ORDER: namespaces' order)

NAMESPACE_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MAX_DEPTH = 8
PATH_SEPARATOR = "/"

namespace_slug_validator = RegexValidator(
    NAMESPACE_PATTERN,
    "Use 1-64 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit.",
)


def validate_namespace_slug(value: str) -> None:
    namespace_slug_validator(value)
    if ".." in value:
        from django.core.exceptions import ValidationError

        raise ValidationError("A namespace may not contain '..'.")



class Namespace(BaseModel):
    """A named space for memories. Shared memories flow down the tree to descendant namespaces."""

    namespace = models.CharField(max_length=64, unique=True, validators=[validate_namespace_slug])
    display_name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    access_policy = models.CharField(max_length=16, choices=AccessPolicy.choices, default=AccessPolicy.INVITE_ONLY)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    # Materialised slug path ("company/team/squad"), kept by namespaces.services on every move.
    path = models.CharField(max_length=64 * MAX_DEPTH + MAX_DEPTH, db_index=True, editable=False)
    depth = models.PositiveSmallIntegerField(default=0, editable=False)

    class Meta:
        db_table = "namespaces"
        ordering = ["path"]
        permissions = [
            ("member_namespace", "Member of the namespace"),
            ("admin_namespace", "Administers the namespace"),
        ]
        constraints = [
            choices_check("access_policy", AccessPolicy, "namespaces_access_policy_valid"),
            models.CheckConstraint(condition=models.Q(namespace__regex=NAMESPACE_PATTERN), name="namespaces_slug_valid"),
            models.CheckConstraint(condition=~models.Q(parent=models.F("id")), name="namespaces_not_own_parent"),
        ]

    def __str__(self) -> str:
        return self.namespace

    def ancestor_paths(self) -> list[str]:
        parts = self.path.split(PATH_SEPARATOR)
        return [PATH_SEPARATOR.join(parts[:i]) for i in range(1, len(parts))]


class NamespaceUserObjectPermission(UserObjectPermissionBase):
    """Direct-FK guardian permissions on namespaces (roles of agents, rights of operators)."""

    content_object = models.ForeignKey(Namespace, on_delete=models.CASCADE)


class NamespaceGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Namespace, on_delete=models.CASCADE)


def agent_model():
    """The agent model, reached through its foreign key to Namespace.

    Namespaces sit below agents and import nothing of them; memberships name agents all the same.
    """
    return Namespace._meta.get_field("home_agents").related_model


def memory_model():
    """The memory model, reached through its foreign key to Namespace (memories sit above namespaces)."""
    return Namespace._meta.get_field("memories").related_model
