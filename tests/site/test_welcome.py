"""`manage.py welcome`, printed by `make run` before the server starts."""
from __future__ import annotations

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
@pytest.mark.parametrize(("bind", "base"), [(None, "http://127.0.0.1:8000"), ("0.0.0.0:9000", "http://0.0.0.0:9000")])
def test_welcome_names_the_address_make_run_serves_on(monkeypatch, bind, base):
    # given
    if bind is None:
        monkeypatch.delenv("TMWS_BIND", raising=False)
    else:
        monkeypatch.setenv("TMWS_BIND", bind)
    out = io.StringIO()

    # when
    call_command("welcome", stdout=out)

    # then
    lines = out.getvalue().splitlines()
    assert lines[0] == f"TMWS 2 is starting on {base}"
    assert lines[3] == f"  admin:    {base}/admin/   API docs: {base}/api/docs/"
    assert "No operator yet" in lines[4]
