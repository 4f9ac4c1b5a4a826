"""Request-wide plumbing that every view shares."""
from __future__ import annotations

import access


def access_scope(get_response):
    """Each request resolves its principals (and their namespace sets) once; nothing outlives it."""

    def middleware(request):
        with access.request_scope():
            return get_response(request)

    return middleware
