"""What the audit trail records: the actions and the kinds of actor, importable without loading any model."""
from django.db import models


class AuditAction(models.TextChoices):
    """Every action the audit trail knows. A service records one of these in the transaction of its change.

    Some are not recorded by any service yet; they are named here so that the code that will make those
    changes (merges, purges, exports and imports) records them under these names.
    """

    # Memories (the object is the memory; never its content).
    MEMORY_SHARE = "memory.share", "Memory shared with agents"
    MEMORY_UNSHARE = "memory.unshare", "Memory un-shared from agents"
    MEMORY_RESTORE = "memory.restore", "Memory restored to an earlier version"
    MEMORY_MERGE = "memory.merge", "Memories merged into one"
    MEMORY_DELETE = "memory.delete", "Memory deleted"
    MEMORIES_IMPORT = "memories.import", "Memories imported"
    MEMORIES_EXPORT = "memories.export", "Memories exported"
    # Namespaces and membership (the object is the namespace, or the member agent).
    NAMESPACE_CREATE = "namespace.create", "Namespace created"
    NAMESPACE_UPDATE = "namespace.update", "Namespace changed"
    NAMESPACE_DELETE = "namespace.delete", "Namespace deleted"
    NAMESPACE_MEMBER_ADD = "namespace.member_add", "Member added to a namespace"
    NAMESPACE_MEMBER_REMOVE = "namespace.member_remove", "Member removed from a namespace"
    NAMESPACE_ROLE_CHANGE = "namespace.role_change", "Member's role changed"
    NAMESPACE_OPERATOR_RIGHTS = "namespace.operator_rights", "Operator's rights on a namespace changed"
    # Agents and keys (the object is the agent, or the operator user for its own keys).
    AGENT_REGISTER = "agent.register", "Agent registered"
    AGENT_UPDATE = "agent.update", "Agent changed"
    AGENT_RETIRE = "agent.retire", "Agent retired"
    AGENT_PURGE = "agent.purge", "Agent purged"
    AGENT_KEY_ROTATE = "agent.key_rotate", "Agent's API key rotated"
    AGENT_KEY_ISSUE = "agent.key_issue", "Operator API key issued"
    AGENT_KEY_REVOKE = "agent.key_revoke", "API keys revoked"
    # The Django admin (the object is whatever the admin page changed).
    ADMIN_ADD = "admin.add", "Added in the admin"
    ADMIN_CHANGE = "admin.change", "Changed in the admin"
    ADMIN_DELETE = "admin.delete", "Deleted in the admin"


class ActorKind(models.TextChoices):
    AGENT = "agent", "Agent"
    OPERATOR = "operator", "Operator"
    SYSTEM = "system", "System"
