"""Enumerations of the memories app, importable without loading models."""
from django.db import models

from access.choices import AccessLevel  # noqa: F401  (memories name it here too)


class EmbeddingStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class UsageKind(models.TextChoices):
    """What a usage event records: a search, or what the searcher then did with a memory."""

    SEARCH = "search", "Search"
    READ = "read", "Read"
    FEEDBACK = "feedback", "Feedback"
    TASK = "task", "Used in a task"
