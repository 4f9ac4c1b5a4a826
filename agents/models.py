"""Agents (the principals of the API and MCP tools) and their hashed API keys."""
from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from core.models import BaseModel, choices_check

AGENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
agent_id_validator = RegexValidator(
    AGENT_ID_PATTERN, "Use 1-128 letters, digits, '.', '_', ':', '@' or '-', starting with a letter or digit."
)


class AgentAccessLevel(models.TextChoices):
    STANDARD = "standard", "Standard"
    ADMIN = "admin", "Admin"


class AgentQuerySet(models.QuerySet):
    def visible_to(self, actor) -> AgentQuerySet:
        """Only the agents `actor` (agent, operator user or Principal) may list and read."""
        from access import agent_visibility_q

        return self.filter(agent_visibility_q(actor))


class Agent(BaseModel):
    """An AI agent registered with the service. Its linked Django user carries its object permissions."""

    agent_id = models.CharField(max_length=128, unique=True, validators=[agent_id_validator])
    display_name = models.CharField(max_length=200, blank=True)
    agent_type = models.CharField(max_length=64, default="language_model")
    capabilities = models.JSONField(default=dict, blank=True)
    configuration = models.JSONField(default=dict, blank=True)
    namespace = models.ForeignKey("namespaces.Namespace", on_delete=models.PROTECT, related_name="home_agents")
    access_level = models.CharField(max_length=16, choices=AgentAccessLevel.choices, default=AgentAccessLevel.STANDARD)
    is_active = models.BooleanField(default=True)
    last_activity = models.DateTimeField(null=True, blank=True)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="agent")

    objects = AgentQuerySet.as_manager()

    class Meta:
        db_table = "agents"
        ordering = ["agent_id"]
        constraints = [choices_check("access_level", AgentAccessLevel, "agents_access_level_valid")]

    def __str__(self) -> str:
        return self.agent_id

    @property
    def is_admin(self) -> bool:
        return self.access_level == AgentAccessLevel.ADMIN


KEY_PREFIX = "tmws"


def hash_secret(secret: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is safe and keeps authentication cheap.
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKey(BaseModel):
    """A bearer key of an agent or operator user; only its SHA-256 is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    lookup = models.CharField(max_length=16, unique=True, editable=False)
    hashed_secret = models.CharField(max_length=64, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_keys"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{KEY_PREFIX}_{self.lookup}_…"

    @classmethod
    def issue(cls, user, name: str = "default") -> tuple[ApiKey, str]:
        """Create a key for `user`; return it with the plaintext, which is never stored."""
        lookup = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        key = cls.objects.create(user=user, name=name, lookup=lookup, hashed_secret=hash_secret(secret))
        return key, f"{KEY_PREFIX}_{lookup}_{secret}"

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.hashed_secret, hash_secret(secret))
