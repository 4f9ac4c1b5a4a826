"""The operator console in a real browser (Debian's Chromium, headless, through Playwright).

Each page is loaded the way an operator's browser loads it: the test fails on any console error, any failed or
refused request and any request leaving the test server. A screenshot of each page is written to
var/screenshots/ (docs/operators.md shows them).
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from guardian.shortcuts import assign_perm

from memories.contracts import StoreMemory
from memories.services import create_memory
from namespaces.models import Namespace
from tests.site.test_api_docs import chromium_path
from workflows.models import Task

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "console-pass-123!"
SCREENSHOTS = settings.DATA_DIR / "screenshots"


class Console:
    """A browser page that records what went wrong while it was used."""

    def __init__(self, browser, live_server):
        self.origin = urlsplit(live_server.url).netloc
        self.base = live_server.url
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.problems: list[str] = []
        self.page.route("**/*", self._only_the_server)
        self.page.on("console", lambda message: message.type == "error" and self.problems.append(
            f"console: {message.text}"))
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("requestfailed", lambda request: self.problems.append(f"failed: {request.url}"))
        self.page.on("response", lambda response: response.status >= 400 and self.problems.append(
            f"{response.status}: {response.url}"))

    def _only_the_server(self, route):
        if urlsplit(route.request.url).netloc == self.origin or route.request.url.startswith("data:"):
            route.continue_()
        else:
            self.problems.append(f"outside: {route.request.url}")
            route.abort()

    def log_in(self, username: str) -> None:
        self.page.goto(f"{self.base}/admin/login/", wait_until="networkidle")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", PASSWORD)
        self.page.click("input[type=submit]")
        self.page.wait_for_load_state("networkidle")

    def visit(self, path: str, screenshot: str) -> str:
        self.page.goto(f"{self.base}{path}", wait_until="networkidle")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{screenshot}.png"), full_page=True)
        return self.page.content()


@pytest.fixture
def browser():
    """Chromium for one test: ask for it after the fixtures that write to the database (Playwright runs an event
    loop in this thread, under which Django refuses database calls), so it is closed before they are undone."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def workload(team):
    """A few memories of several levels, categories and owners, and tasks, so every chart has something to draw."""
    owner, member = team["owner"].agent, team["member"].agent
    memories = [
        create_memory(owner, StoreMemory.parse({"content": "The harbour crane inspection is on Monday.",
                                                "memory_category": "operations"})),
        create_memory(owner, StoreMemory.parse({"content": "Deploys need the lead's approval.", "access_level": "shared",
                                                "memory_category": "process"})),
        create_memory(member, StoreMemory.parse({"content": "Office opens at eight.", "access_level": "public"})),
        create_memory(team["outsider"].agent, StoreMemory.parse({"content": "Outsider's budget figures.",
                                                                 "access_level": "shared",
                                                                 "memory_category": "finance"})),
    ]
    Task.objects.create(title="Inspect the crane", namespace=owner.namespace, assigned_agent=owner)
    for mode in ("hybrid", "keyword"):  # usage events for the search charts
        response = team["owner"].client.post("/api/v2/memories/search", {"query": "crane", "mode": mode}, format="json")
        assert response.status_code == 200
    return memories


@pytest.fixture
def superuser():
    return get_user_model().objects.create_superuser("console-admin", "admin@example.com", PASSWORD)


@pytest.fixture
def team_operator(team):
    """An operator of `team` (and its subtree) only."""
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("console-team", password=PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=[
        "view_memory", "view_agent", "view_namespace", "view_task", "view_workflowrun"]))
    assign_perm("view_namespace", user, Namespace.objects.get(namespace="team"))
    return user


def test_the_operator_console_works_in_a_browser(live_server, workload, superuser, browser):
    # given
    memory = workload[1]
    console = Console(browser, live_server)
    console.log_in("console-admin")
    # when: the dashboard
    index = console.visit("/admin/", "dashboard")
    # then: titled TMWS 2, every chart drawn
    assert console.page.title() == "Operations | TMWS 2"
    charts = console.page.locator("#operator-charts figure.chart svg")
    assert charts.count() == 8
    assert all(charts.nth(i).locator("rect, circle").count() > 0 for i in range(charts.count()))
    assert "Django administration" not in index
    # when: search as the owner
    console.visit("/admin/search-as-agent/", "search-as-agent-form")
    console.page.select_option("#id_agent", label="owner-agent")
    console.page.fill("#id_query", "harbour crane inspection")
    console.page.select_option("#id_mode", "keyword")
    console.page.click("#search-as-agent input[type=submit]")
    console.page.wait_for_load_state("networkidle")
    console.page.screenshot(path=str(SCREENSHOTS / "search-as-agent.png"), full_page=True)
    # then: the owner's private memory is the first result
    first = console.page.locator("#search-results tbody tr").first.inner_text()
    assert "The harbour crane inspection is on Monday." in first
    # and the other pages an operator works in
    change = console.visit(f"/admin/memories/memory/{memory.pk}/change/", "memory")
    assert re.search(r"member-agent</td><td>member of company/team", change)
    console.visit("/admin/memories/memory/", "memories")
    # the list fits a 1280-pixel window: no column runs off the page
    overflow = console.page.evaluate(
        "() => { const t = document.querySelector('#result_list'); return t.scrollWidth - t.parentElement.clientWidth; }")
    assert overflow <= 0
    console.visit("/admin/agents/agent/", "agents")
    suggestions = console.visit(f"/admin/agents/agent/{workload[0].agent_id}/suggestions/", "suggestions")
    assert "Learning suggestions for owner-agent" in suggestions
    console.visit("/admin/audit/auditentry/", "audit")
    console.visit("/admin/workflows/task/", "tasks")
    assert console.problems == []


def test_a_scoped_operator_sees_only_its_namespaces(live_server, workload, team_operator, browser):
    # given
    console = Console(browser, live_server)
    console.log_in("console-team")
    # when
    index = console.visit("/admin/", "dashboard-scoped")
    memories = console.visit("/admin/memories/memory/", "memories-scoped")
    # then
    assert "owner-agent" in index and "outsider-agent" not in index and "finance" not in index
    assert "Deploys need the lead" in memories and "budget figures" not in memories
    nav = console.page.locator("#tmws-nav a").all_inner_texts()
    assert nav == ["Agents", "Namespaces", "Memories", "Search as an agent", "Tasks", "Workflow runs"]
    assert console.problems == []
