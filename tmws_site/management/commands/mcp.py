"""`python manage.py mcp`: serve the MCP tools over stdio as the agent whose key is in TMWS_API_KEY."""
from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError

from tmws_site.mcp_server import SessionRefused, agent_for_key, serve_stdio


class Command(BaseCommand):
    help = "Serve the MCP tools over stdio for one agent (its API key in the TMWS_API_KEY environment variable)."
    requires_system_checks: list = []

    def handle(self, *args, **options):
        try:
            agent = agent_for_key(os.environ.get("TMWS_API_KEY"))
        except SessionRefused as exc:
            # stdout belongs to the protocol: the reason goes to stderr and the process exits non-zero.
            raise CommandError(f"MCP session refused: {exc}") from exc
        self.stderr.write(f"TMWS MCP server (stdio) serving agent '{agent.agent_id}'.")
        serve_stdio(agent)
