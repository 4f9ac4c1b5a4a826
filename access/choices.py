"""The enumerations the access rules decide on, importable without loading any model."""
from django.db import models


class AccessLevel(models.TextChoices):
    PRIVATE = "private", "Private: the owner only"
    SHARED = "shared", "Shared: namespace members and named agents"
    PUBLIC = "public", "Public: every agent"
    SYSTEM = "system", "System: every agent; operators and admin agents write"


class AccessPolicy(models.TextChoices):
    OPEN = "open", "Open: agents may join themselves"
    INVITE_ONLY = "invite_only", "Invite only: namespace admins add members"
    CLOSED = "closed", "Closed: only operators add members"


class Role(models.TextChoices):
    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"


# A namespace role is held as this guardian object permission on the namespace.
ROLE_PERMISSIONS = {Role.MEMBER: "member_namespace", Role.ADMIN: "admin_namespace"}


class AccessReason(models.TextChoices):
    """Why a principal may read a memory (access.explain)."""

    OWNER = "owner", "Owner"
    PUBLIC = "public", "Public: every agent"
    SYSTEM = "system", "System: every agent"
    MEMBER = "member", "Member of its namespace"
    MEMBER_BELOW = "member_below", "Member of a namespace below its namespace"
    SHARED_WITH = "shared_with", "Shared with it"
    SUPERUSER = "superuser", "Superuser"
    OPERATOR_SCOPE = "operator_scope", "Operator of its namespace"
