"""A memory's neighbours: the memories written just before and after it in the same session.

Agents store conversations turn by turn, and a question is often answered across two turns ("What
did you paint?" / "A sunrise over the lake"), or by a turn whose words are in the one before it.
Memories carry the order they were written in (`sequence`) and the session they belong to
(`session_key`, from metadata.session_id or metadata.session_date); within one agent, namespace and
session, the nearest memories by sequence are a memory's neighbours. Memories without a session
have none: nothing else says that two memories belong to one exchange.

Only memories the caller may read are neighbours (the look-up runs on the caller's visible rows).
"""
from __future__ import annotations

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import OuterRef, QuerySet

# How many memories on each side are read: one is a memory's context; the second is the context of
# that neighbour, which hybrid search may rank too.
WINDOW = 2


def neighbour_windows(visible: QuerySet, ids) -> dict:
    """{id: (before, after)} for the given memories, each side nearest first, up to WINDOW each."""
    if not ids:
        return {}
    same_session = visible.filter(
        agent_id=OuterRef("agent_id"), namespace_id=OuterRef("namespace_id"), session_key=OuterRef("session_key")
    ).order_by()
    before = ArraySubquery(
        same_session.filter(sequence__lt=OuterRef("sequence")).order_by("-sequence").values("pk")[:WINDOW]
    )
    after = ArraySubquery(
        same_session.filter(sequence__gt=OuterRef("sequence")).order_by("sequence").values("pk")[:WINDOW]
    )
    rows = (
        visible.filter(pk__in=list(ids), session_key__isnull=False, agent__isnull=False).order_by()
        .values_list("pk", before, after)
    )
    return {pk: (list(earlier or []), list(later or [])) for pk, earlier, later in rows}


def adjacency(windows: dict) -> dict:
    """{id: set of neighbour ids} for every memory in the windows whose both sides are known."""
    links: dict = {}
    for pk, (before, after) in windows.items():
        chain = [*reversed(before), pk, *after]
        for left, right in zip(chain, chain[1:], strict=False):
            links.setdefault(left, set()).add(right)
            links.setdefault(right, set()).add(left)
    return links



