"""The abstract base every TMWS table shares: UUID key, timestamps and free-form metadata."""
from __future__ import annotations

import uuid

from django.db import models
from django.db.models import F, Value
from django.db.models.functions import Collate, Replace

from .errors import NotFound

# The order of a tree held as materialised paths ("team/a"): byte order with "/" sorting before every
# slug character keeps each subtree right under its root ("team/a" before "team-x"), whatever the
# database's collation.
TREE_ORDER = Collate(Replace(F("path"), Value("/"), Value(" ")), "C")


class BaseModel(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        abstract = True


def count_by(queryset, field: str) -> dict:
    """{value of `field`: rows} for a queryset, in one GROUP BY query (the model's ordering left out)."""
    return dict(queryset.order_by().values_list(field).annotate(n=models.Count("pk")))


def choices_check(field: str, choices: type[models.TextChoices], name: str) -> models.CheckConstraint:
    """A database constraint that keeps an enumerated text column inside its choices."""
    return models.CheckConstraint(condition=models.Q(**{f"{field}__in": choices.values}), name=name)


def find_visible(queryset, pk, noun: str):
    """The row `pk` of a queryset already narrowed to what the caller may read, or NotFound.

    A malformed id, a missing row and a hidden row answer alike, so a 404 never tells whether
    something exists.
    """
    try:
        key = uuid.UUID(str(pk))
    except ValueError as exc:
        raise NotFound(f"{noun} not found.") from exc
    found = queryset.filter(pk=key).first()
    if found is None:
        raise NotFound(f"{noun} not found.")
    return found
