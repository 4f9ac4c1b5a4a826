"""Enumerations of the memories app, importable without loading models."""
from django.db import models


class AccessLevel(models.TextChoices):
    PRIVATE = "private", "Private: the owner only"
    SHARED = "shared", "Shared: namespace members and named agents"
    PUBLIC = "public", "Public: every agent"
    SYSTEM = "system", "System: every agent; operators and admin agents write"


class EmbeddingStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
