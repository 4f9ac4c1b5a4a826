"""MCP tools for namespaces: see the ones you may use, and join open ones."""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

import access
from core.tools import agent_tool, filtered, render_json

from . import services
from .filters import NamespaceFilter
from .models import Namespace

if TYPE_CHECKING:
    from agents.models import Agent


def render_namespaces(namespaces, member_ids: set, admin_ids: set) -> list[dict]:
    """Namespaces in the REST API's shape (one serializer for the lot), plus the caller's role in each."""
    from .api.serializers import NamespaceSerializer

    namespaces = list(namespaces)
    rendered = render_json(NamespaceSerializer(namespaces, many=True).data)
    for namespace, data in zip(namespaces, rendered, strict=True):
        data["my_role"] = "admin" if namespace.pk in admin_ids else "member" if namespace.pk in member_ids else None
    return rendered


@agent_tool(
    title="List namespaces",
    read_only=True,
    description="List the namespaces you can see: your own (my_role member/admin), their ancestors, and open ones "
    'you may join. Example: {"access_policy": "open"}.',
)
def list_namespaces(
    agent: Agent,
    access_policy: Annotated[Literal["open", "invite_only", "closed"] | None,
                             Field(description="Only namespaces with this policy.")] = None,
    member_only: Annotated[bool, Field(description="Only namespaces you are a member of.")] = False,
) -> dict[str, Any]:
    visible = Namespace.objects.select_related("parent").filter(access.namespace_visibility_q(agent)).order_by("path")
    namespaces = filtered(NamespaceFilter, visible, access_policy=access_policy)
    member_ids, admin_ids = access.member_namespace_ids(agent), access.admin_namespace_ids(agent)
    if member_only:
        namespaces = namespaces.filter(pk__in=member_ids)
    results = render_namespaces(namespaces, member_ids, admin_ids)
    return {"results": results, "count": len(results)}


@agent_tool(
    title="Join a namespace",
    description="Become a member of an open namespace (invite-only and closed ones need an admin or operator). "
    'Joining one you already belong to changes nothing. Example: {"namespace": "community"}.',
)
def join_namespace(
    agent: Agent,
    namespace: Annotated[str, Field(description="The namespace slug.")],
) -> dict[str, Any]:
    target = services.visible_namespace_or_404(agent, namespace)
    services.join_namespace(agent, target)
    return render_namespaces([target], access.member_namespace_ids(agent), access.admin_namespace_ids(agent))[0]
