"""Persona -> agent conversion shared by the data migration (historical models) and the import command.

Every function takes an app registry (`apps` in a RunPython, `django.apps.apps` elsewhere), so the
migration and the live code convert in exactly one way.
"""
from __future__ import annotations

import uuid

from .adapter import LEGACY_NAMESPACE, agent_fields_from_persona

AGENT_USERNAME_PREFIX = "agent:"  # the same prefix agents.services gives an agent's user
MEMBER_PERMISSION = "member_namespace"

PERSONA_COLUMNS = (
    "id", "name", "type", "role", "display_name", "description", "specialties", "config", "preferences",
    "is_active", "capabilities", "total_tasks", "successful_tasks", "average_response_time", "last_active_at",
    "metadata",
)

# (ownership kind, app label, model, field on that model pointing at the agent)
OWNERSHIP_TARGETS = {
    "memory_owner": ("memories", "Memory", "agent", "memory"),
    "task_assignee": ("workflows", "Task", "assigned_agent", "task"),
    "workflow_creator": ("workflows", "Workflow", "created_by", "workflow"),
}


class ConversionRefused(Exception):
    """The reverse cannot run without losing data created since the forward step."""


def ensure_legacy_namespace(apps, slug: str = LEGACY_NAMESPACE):
    """The namespace persona-era data lands in; created (invite-only, top level) when missing."""
    Namespace = apps.get_model("namespaces", "Namespace")
    namespace = Namespace.objects.filter(namespace=slug).first()
    if namespace is None:
        namespace = Namespace.objects.create(
            namespace=slug,
            display_name="Persona-era data" if slug == LEGACY_NAMESPACE else slug,
            description="Personas, memories, tasks and workflows moved from the persona-era service.",
            access_policy="invite_only",
            path=slug,
            depth=0,
        )
    return namespace


def _member_permission(apps):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    content_type, _ = ContentType.objects.get_or_create(app_label="namespaces", model="namespace")
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename=MEMBER_PERMISSION, defaults={"name": "Member of the namespace"}
    )
    return permission


def grant_membership(apps, agent, namespace) -> None:
    NamespaceUserObjectPermission = apps.get_model("namespaces", "NamespaceUserObjectPermission")
    NamespaceUserObjectPermission.objects.get_or_create(
        user_id=agent.user_id, permission=_member_permission(apps), content_object=namespace
    )


def persona_values(persona) -> dict:
    return {column: getattr(persona, column) for column in PERSONA_COLUMNS}


def agent_for_persona_row(apps, values: dict, namespace) -> tuple[object, bool]:
    """The agent for a persona (given as its column values): an existing one of the same name, or a new one.

    A new agent takes the persona's UUID as its primary key and its created_at, has no API key
    (keys come from the import command or rotate-key) and is a member of `namespace`.
    """
    Agent = apps.get_model("agents", "Agent")
    User = apps.get_model(*_user_model_label(apps))
    agent = Agent.objects.filter(agent_id=values["name"]).first()
    if agent is not None:
        grant_membership(apps, agent, namespace)
        return agent, False
    fields = agent_fields_from_persona(values)
    user = User.objects.create(username=f"{AGENT_USERNAME_PREFIX}{values['name']}"[:150], password="!")
    pk = values.get("id") or uuid.uuid4()
    if Agent.objects.filter(pk=pk).exists():
        pk = uuid.uuid4()
    agent = Agent.objects.create(id=pk, user=user, namespace=namespace, **fields)
    if values.get("created_at"):
        Agent.objects.filter(pk=agent.pk).update(created_at=values["created_at"])
    grant_membership(apps, agent, namespace)
    return agent, True


def _user_model_label(apps) -> tuple[str, str]:
    from django.conf import settings

    app_label, model = settings.AUTH_USER_MODEL.split(".")
    return app_label, model


def personas_to_agents(apps, namespace_slug: str = LEGACY_NAMESPACE) -> dict:
    """Give every unlinked compat Persona an agent, then point its persona-era links at that agent."""
    Persona = apps.get_model("compat", "Persona")
    PersonaLink = apps.get_model("compat", "PersonaLink")
    counts = {"agents_created": 0, "agents_linked": 0, "links_rewired": 0}
    pending = Persona.objects.exclude(link__agent__isnull=False).order_by("name")
    if not pending.exists() and not _unrewired(apps).exists():
        return counts
    namespace = ensure_legacy_namespace(apps, namespace_slug)
    for persona in pending:
        values = persona_values(persona)
        values["created_at"] = persona.created_at
        agent, created = agent_for_persona_row(apps, values, namespace)
        PersonaLink.objects.update_or_create(persona=persona, defaults={"agent": agent, "agent_created": created})
        counts["agents_created" if created else "agents_linked"] += 1
    counts["links_rewired"] = rewire_ownerships(apps)
    return counts


def _unrewired(apps):
    PersonaOwnership = apps.get_model("compat", "PersonaOwnership")
    return PersonaOwnership.objects.filter(rewired=False, persona__link__agent__isnull=False)


def rewire_ownerships(apps) -> int:
    """Point each persona-era link's object at the persona's agent, remembering what it pointed at."""
    rewired = 0
    for ownership in _unrewired(apps).select_related("persona__link"):
        app_label, model_name, field, attribute = OWNERSHIP_TARGETS[ownership.kind]
        Model = apps.get_model(app_label, model_name)
        target_id = getattr(ownership, f"{attribute}_id")
        previous = Model.objects.filter(pk=target_id).values_list(f"{field}_id", flat=True).first()
        # update() rather than save(): the object's updated_at stays as it was.
        Model.objects.filter(pk=target_id).update(**{f"{field}_id": ownership.persona.link.agent_id})
        ownership.previous_agent_id = previous
        ownership.rewired = True
        ownership.save(update_fields=["previous_agent_id", "rewired", "updated_at"])
        rewired += 1
    return rewired


def agents_to_personas(apps) -> dict:
    """The reverse: restore every rewired link, then remove the agents (and their users) the forward step made."""
    PersonaLink = apps.get_model("compat", "PersonaLink")
    PersonaOwnership = apps.get_model("compat", "PersonaOwnership")
    Memory = apps.get_model("memories", "Memory")
    counts = {"links_restored": 0, "agents_removed": 0, "links_removed": 0}
    for ownership in PersonaOwnership.objects.filter(rewired=True):
        app_label, model_name, field, attribute = OWNERSHIP_TARGETS[ownership.kind]
        Model = apps.get_model(app_label, model_name)
        Model.objects.filter(pk=getattr(ownership, f"{attribute}_id")).update(
            **{f"{field}_id": ownership.previous_agent_id}
        )
        ownership.rewired = False
        ownership.previous_agent_id = None
        ownership.save(update_fields=["rewired", "previous_agent_id", "updated_at"])
        counts["links_restored"] += 1
    created = PersonaLink.objects.filter(agent_created=True, agent__isnull=False).select_related("agent")
    for link in created:
        owned = Memory.objects.filter(agent_id=link.agent_id).count()
        if owned:
            raise ConversionRefused(
                f"Agent '{link.agent.agent_id}' owns {owned} memories that did not come from a persona link "
                "(created since the migration, or imported by migrate_personas_to_agents). Roll the import back "
                "with `manage.py migrate_personas_to_agents --rollback`, or delete or reassign those memories, "
                "then reverse the migration."
            )
    for link in created:
        agent = link.agent
        user_id = agent.user_id
        link.agent = None
        link.save(update_fields=["agent", "updated_at"])
        agent.delete()
        apps.get_model(*_user_model_label(apps)).objects.filter(pk=user_id).delete()
        counts["agents_removed"] += 1
    counts["links_removed"] = PersonaLink.objects.all().delete()[0]
    return counts
