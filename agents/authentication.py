"""Bearer API-key authentication for agents (and operator scripts)."""
from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import KEY_PREFIX, ApiKey


def user_for_key(raw_key: str):
    """The active user a plaintext key belongs to, or raise AuthenticationFailed."""
    prefix, _, rest = raw_key.partition("_")
    lookup, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not lookup or not secret:
        raise exceptions.AuthenticationFailed("Invalid API key.")
    key = (
        ApiKey.objects.select_related("user", "user__agent", "user__agent__namespace")
        .filter(lookup=lookup, revoked_at__isnull=True)
        .first()
    )
    if key is None or not key.matches(secret):
        raise exceptions.AuthenticationFailed("Invalid API key.")
    user = key.user
    agent = getattr(user, "agent", None)
    if not user.is_active or (agent is not None and not agent.is_active):
        raise exceptions.AuthenticationFailed("This agent is inactive.")
    now = timezone.now()
    # Touch activity at most once a minute so authentication does not write on every request.
    if agent is not None and (agent.last_activity is None or (now - agent.last_activity).total_seconds() > 60):
        type(agent).objects.filter(pk=agent.pk).update(last_activity=now)
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return user


class BearerKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <api key>'.")
        try:
            raw_key = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid API key.") from exc
        return user_for_key(raw_key), raw_key

    def authenticate_header(self, request) -> str:
        return self.keyword
