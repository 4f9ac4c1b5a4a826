"""Erase an agent and everything of it, for good; `--dry-run` lists what would go and changes nothing."""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from access import SYSTEM
from agents.contracts import PurgeAgent
from core.errors import ServiceError
from namespaces.services import get_agent

from ...purge import purge_agent

LABELS = {
    "memories": "memories erased",
    "handed_over": "memories handed over",
    "versions": "history versions erased",
    "shares_granted_to_it": "shares granted to it",
    "shares_of_its_memories": "shares of its memories",
    "votes": "feedback votes",
    "keys": "API keys",
    "memberships": "namespace memberships",
}


class Command(BaseCommand):
    help = (
        "Erase an agent for good: its private memories, keys, shares, votes, memberships and history; its shared, "
        "public and system memories too, unless --hand-to names the agent that keeps them. Cannot be undone: "
        "run with --dry-run first."
    )

    def add_arguments(self, parser):
        parser.add_argument("agent_id", help="the agent to erase")
        parser.add_argument("--hand-to", default=None, help="the agent that receives its shared, public and system memories")
        parser.add_argument("--dry-run", action="store_true", help="list what would be erased; change nothing")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **options):
        try:
            agent = get_agent(options["agent_id"])
            data = PurgeAgent.parse({"purge": True, "hand_to": options["hand_to"], "dry_run": options["dry_run"]})
            report = purge_agent(SYSTEM, agent, data)
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        verb = "Would erase" if report["dry_run"] else "Erased"
        self.stdout.write(f"{verb} agent '{report['agent_id']}'" + (
            f", handing its shared, public and system memories to '{report['hand_to']}'" if report["hand_to"] else "")
            + ":")
        for key, label in LABELS.items():
            self.stdout.write(f"  {label:<26} {report['counts'][key]:>8}")
        if report["dry_run"]:
            self.stdout.write("Nothing changed (dry run).")
        else:
            self.stdout.write(self.style.SUCCESS("Done."))
