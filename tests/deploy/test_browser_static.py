"""Static files in production: Chromium against gunicorn with DEBUG=false, after the image's collectstatic.

Without whitenoise nothing serves /static/ once DEBUG is off: the admin loses its CSS and JavaScript
and /api/docs/ (Swagger UI, from drf-spectacular-sidecar) stays blank. Every stylesheet and script a
page loads must answer 200 with its content type, under a hashed name (cached for ever) and gzipped.
"""

import re

import pytest
from playwright.sync_api import Page, Response

from tests.deploy.conftest import Stack

CONTENT_TYPES = {
    "stylesheet": ("text/css",),
    "script": ("application/javascript", "text/javascript"),
}
HASHED = re.compile(r"\.[0-9a-f]{12}\.(css|js)$")  # ManifestStaticFilesStorage: name.<12 hex>.ext
TRANSPARENT = "rgba(0, 0, 0, 0)"


def _load(page: Page, url: str) -> list[Response]:
    """Open `url` and return every response to a stylesheet or script request; no request may fail."""
    loaded: list[Response] = []
    failed: list[str] = []
    page.on("response", lambda response: loaded.append(response))
    page.on("requestfailed", lambda request: failed.append(f"{request.url}: {request.failure}"))
    main = page.goto(url, wait_until="networkidle")
    assert main is not None
    assert main.status == 200, main.status
    assert failed == []
    return [response for response in loaded if response.request.resource_type in CONTENT_TYPES]


def _assert_served_as_production_assets(responses: list[Response]) -> None:
    for response in responses:
        kind = response.request.resource_type
        headers = response.all_headers()
        content_type = headers.get("content-type", "").split(";")[0].strip()
        assert response.status == 200, response.url
        assert content_type in CONTENT_TYPES[kind], (response.url, content_type)
        assert "/static/" in response.url, response.url
        assert HASHED.search(response.url.split("?")[0]), f"not a hashed name: {response.url}"
        assert "immutable" in headers.get("cache-control", ""), (response.url, headers.get("cache-control"))
        assert headers.get("content-encoding") == "gzip", (response.url, headers.get("content-encoding"))


@pytest.mark.timeout(180)
def test_admin_login_is_styled_with_hashed_compressed_static_files(page: Page, stack: Stack):
    responses = _load(page, f"{stack.url}/admin/login/")

    kinds = {response.request.resource_type for response in responses}
    names = {response.url.rsplit("/", 1)[1].split(".")[0] for response in responses}
    assert kinds == {"stylesheet", "script"}, kinds
    assert {"base", "login"} <= names, names
    _assert_served_as_production_assets(responses)
    # Styled: the header has the admin's colour and the form its layout, as base.css and login.css set them.
    header_background = page.eval_on_selector("#header", "e => getComputedStyle(e).backgroundColor")
    assert header_background not in {TRANSPARENT, ""}
    assert header_background == "rgb(65, 118, 144)"  # --header-bg: var(--secondary) = #417690
    # login.css: the form is a centred box with rounded corners (unstyled: "normal" and "0px").
    assert page.eval_on_selector("#header", "e => getComputedStyle(e).justifyContent") == "center"
    assert page.eval_on_selector("#container", "e => getComputedStyle(e).borderTopLeftRadius") == "4px"
    assert page.locator("#id_username").is_visible()


@pytest.mark.timeout(180)
def test_api_docs_render_swagger_ui_from_static_files(page: Page, stack: Stack):
    responses = _load(page, f"{stack.url}/api/docs/")

    names = {response.url.rsplit("/", 1)[1].split(".")[0] for response in responses}
    assert {"swagger-ui", "swagger-ui-bundle", "swagger-ui-standalone-preset"} <= names, names
    _assert_served_as_production_assets(responses)
    # The bundle ran, fetched /api/schema/ and drew the operations with swagger-ui.css's styles.
    page.locator(".swagger-ui .opblock").first.wait_for(state="visible", timeout=20_000)
    assert "Payment Service API" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".swagger-ui .opblock-post").count() > 0
    method_background = page.eval_on_selector(
        ".swagger-ui .opblock-post .opblock-summary-method", "e => getComputedStyle(e).backgroundColor"
    )
    assert method_background not in {TRANSPARENT, ""}
    assert method_background == "rgb(73, 204, 144)"  # swagger-ui.css: POST is #49cc90
