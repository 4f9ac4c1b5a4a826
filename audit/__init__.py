"""The audit trail: who changed what, when, where; read by operators, written only by `record`.

`audit.record(actor, audit.AuditAction.MEMORY_SHARE, obj=memory, before=..., after=...)` appends one entry
in the caller's transaction (see `audit.services.record`); `AuditAction` lists every action name.
"""
from __future__ import annotations

from .choices import ActorKind as ActorKind
from .choices import AuditAction as AuditAction


def record(actor, action, **details):
    """Append one audit entry (`audit.services.record`, which needs the models loaded)."""
    from .services import record as record_entry

    return record_entry(actor, action, **details)
