"""The API docs work offline: Swagger UI and ReDoc come from the pinned sidecar package, nothing from outside."""
from __future__ import annotations

import os
import re
import shutil
from urllib.parse import urlsplit

import pytest

DOC_PAGES = ["/api/docs/", "/api/redoc/"]
pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", DOC_PAGES)
def test_doc_pages_name_no_external_url(client, path):
    # when
    response = client.get(path)

    # then: every asset is a local path, and no absolute URL appears anywhere in the page
    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, flags=re.IGNORECASE) == []
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(asset.startswith("/static/drf_spectacular_sidecar/") for asset in assets)


@pytest.mark.parametrize("path", DOC_PAGES)
def test_doc_assets_are_served(client, path):
    # given
    html = client.get(path).content.decode()

    # when
    responses = [client.get(asset) for asset in re.findall(r'(?:src|href)="([^"]+)"', html)]

    # then
    assert [r.status_code for r in responses] == [200] * len(responses)


def chromium_path() -> str:
    """Debian's Chromium; .ci/run installs it, so CI fails rather than skips without it."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


@pytest.mark.django_db(transaction=True)
def test_swagger_page_renders_the_operations_in_a_browser(live_server):
    # given: a headless browser that may reach only the test server
    from playwright.sync_api import sync_playwright

    origin = urlsplit(live_server.url).netloc
    requests, failures, outside = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_page()

            def route(request_route):
                if urlsplit(request_route.request.url).netloc == origin:
                    request_route.continue_()
                else:
                    outside.append(request_route.request.url)
                    request_route.abort()

            page.route("**/*", route)
            page.on("request", lambda request: requests.append(request.url))
            page.on("requestfailed", lambda request: failures.append(request.url))
            page.on("response", lambda response: response.status >= 400 and failures.append(response.url))

            # when
            page.goto(f"{live_server.url}/api/docs/", wait_until="networkidle")
            page.wait_for_selector(".opblock", timeout=30_000)
            operations = page.locator(".opblock-summary-path").all_inner_texts()
            title = page.locator(".info .title").inner_text()
        finally:
            browser.close()

    # then: the operations list is there, every request went to the server and none failed
    assert title.startswith("TMWS 2 API")
    assert "/api/v2/memories/" in [op.replace("\u200b", "") for op in operations]
    assert len(operations) > 20
    assert outside == [] and failures == []
    assert f"{live_server.url}/api/schema/" in requests
