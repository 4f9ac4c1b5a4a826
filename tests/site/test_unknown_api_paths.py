"""Every answer under /api/ is JSON in the one error shape, whatever the method and path (CSRF included)."""
from __future__ import annotations

import json

import pytest
from django.test import Client, RequestFactory

from core.rest import csrf_failure

UNKNOWN = ["/api/v2/memories/0.5/", "/api/v2/nothing-here/", "/api/v1/zzz", "/api/"]


def _error(response) -> dict:
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "request_id"}
    return body["error"]


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", UNKNOWN)
def test_an_unknown_api_path_is_a_json_404_for_every_method(method, path):
    # given: a browser-like client that enforces CSRF, with no token
    client = Client(enforce_csrf_checks=True)
    # when
    response = client.generic(method, path, data="{}", content_type="application/json")
    # then
    assert response.status_code == 404
    assert (_error(response)["code"], _error(response)["message"]) == ("not_found", "Not found.")


@pytest.mark.django_db
def test_a_signed_in_operator_without_a_csrf_token_also_gets_the_json_404(operator_user):
    # given
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator_user)
    # when
    response = client.patch("/api/v2/memories/0.5/", data="{}", content_type="application/json")
    # then
    assert response.status_code == 404
    assert _error(response)["code"] == "not_found"


def test_a_refused_csrf_check_under_api_answers_json_and_the_admin_keeps_its_page():
    # given
    factory = RequestFactory()
    # when
    api = csrf_failure(factory.post("/api/v2/memories"), reason="CSRF cookie not set.")
    admin = csrf_failure(factory.post("/admin/login/"), reason="CSRF cookie not set.")
    # then
    assert api.status_code == admin.status_code == 403
    assert json.loads(api.content)["error"]["code"] == "permission_denied"
    assert admin["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_the_admin_login_refuses_a_post_without_its_token_with_django_s_page():
    # given
    client = Client(enforce_csrf_checks=True)
    # when
    response = client.post("/admin/login/", {"username": "x", "password": "y"})
    # then
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert b"CSRF verification failed" in response.content
