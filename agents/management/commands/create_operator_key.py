"""Issue a bearer key for an operator's scripts."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from agents.contracts import DEFAULT_KEY_NAME, IssueOperatorKey
from agents.services import issue_operator_key
from core.errors import ServiceError


class Command(BaseCommand):
    help = "Issue an API key for an existing operator (Django staff user); printed once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default=DEFAULT_KEY_NAME, help="a label for the key")

    def handle(self, *args, **options):
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None or not user.is_staff:
            raise CommandError(f"No operator (staff user) named '{options['username']}'.")
        try:
            key = issue_operator_key(user, IssueOperatorKey.parse({"name": options["name"]}))
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"API key for operator '{user.username}' (shown once): {key}")
