"""Learn agents' usage patterns now (what the nightly beat job does), with progress output."""
from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from agents.models import Agent
from memories.patterns import agents_to_learn, learn_patterns, window


class Command(BaseCommand):
    help = ("Learn the usage patterns of one agent (--agent) or of every active agent whose pattern does not cover "
            "the current window yet (what the nightly job does; a run cut short is resumed by the next).")

    def add_arguments(self, parser):
        parser.add_argument("--agent", metavar="AGENT_ID", help="only this agent (learned again even if done)")

    def handle(self, *args, **options):
        if options["agent"]:
            agent = Agent.objects.filter(agent_id=options["agent"]).first()
            if agent is None:
                raise CommandError(f"Agent '{options['agent']}' does not exist.")
            agents = [agent]
        else:
            agents = list(agents_to_learn())
        start, end = window()
        self.stdout.write(f"Learning patterns of {len(agents)} agents over {start:%Y-%m-%d} to {end:%Y-%m-%d} (UTC).")
        changed = failed = 0
        for position, agent in enumerate(agents, start=1):
            began = time.perf_counter()
            try:
                pattern, was_changed = learn_patterns(agent)
            except Exception as error:  # one agent's failure does not stop the others
                failed += 1
                self.stderr.write(f"[{position}/{len(agents)}] {agent.agent_id}: failed: {error}")
                continue
            changed += was_changed
            self.stdout.write(
                f"[{position}/{len(agents)}] {agent.agent_id}: {pattern.events} events, {pattern.memories} memories, "
                f"{len(pattern.topics)} topics, {'updated' if was_changed else 'unchanged'} "
                f"({time.perf_counter() - began:.1f} s)"
            )
        self.stdout.write(self.style.SUCCESS(f"Done: {len(agents) - failed} agents, {changed} patterns changed, "
                                             f"{failed} failed."))
        if failed:
            raise CommandError(f"{failed} agents failed; run the command again to retry them.")
