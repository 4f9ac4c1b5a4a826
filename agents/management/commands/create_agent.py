"""Register an agent from the command line and print its API key once."""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from access import SYSTEM
from agents.contracts import DEFAULT_AGENT_TYPE, RegisterAgent
from agents.models import AgentAccessLevel
from agents.services import register_agent
from core.errors import ServiceError
from namespaces.contracts import CreateNamespace
from namespaces.models import AccessPolicy, Namespace
from namespaces.services import create_namespace


class Command(BaseCommand):
    help = "Create an agent and print its API key (shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("agent_id")
        parser.add_argument("--namespace", default="default", help="home namespace (created if missing)")
        parser.add_argument("--display-name", default="")
        parser.add_argument("--agent-type", default=DEFAULT_AGENT_TYPE)
        parser.add_argument("--admin", action="store_true", help="give the agent the 'admin' access level")
        parser.add_argument("--capabilities", default="{}", help="JSON object")
        parser.add_argument("--json", action="store_true", help="print the agent and key as JSON")

    def handle(self, *args, **options):
        try:
            capabilities = json.loads(options["capabilities"])
        except ValueError as exc:
            raise CommandError(f"--capabilities is not valid JSON: {exc}") from exc
        try:
            if not Namespace.objects.filter(namespace=options["namespace"]).exists():
                create_namespace(SYSTEM, CreateNamespace.parse({"namespace": options["namespace"],
                                                                "access_policy": AccessPolicy.INVITE_ONLY}))
                self.stderr.write(f"Created namespace '{options['namespace']}'.")
            agent, key = register_agent(SYSTEM, RegisterAgent.parse({
                "agent_id": options["agent_id"],
                "namespace": options["namespace"],
                "display_name": options["display_name"],
                "agent_type": options["agent_type"],
                "capabilities": capabilities,
                "access_level": AgentAccessLevel.ADMIN if options["admin"] else AgentAccessLevel.STANDARD,
            }))
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        if options["json"]:
            self.stdout.write(json.dumps({"agent_id": agent.agent_id, "namespace": options["namespace"], "api_key": key}))
            return
        self.stdout.write(self.style.SUCCESS(f"Agent '{agent.agent_id}' created in namespace '{options['namespace']}'."))
        self.stdout.write(f"API key (shown once, store it now): {key}")
        self.stdout.write("Use it as:  Authorization: Bearer <key>")
