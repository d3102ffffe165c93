"""Release from the UI: shown when a relay is configured, refused (and said so) outside the allow-list."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailnest import Config, ServerThread
from tests.web.conftest import UI, mail, require_endpoint


@pytest.fixture
def upstream() -> Iterator[ServerThread]:
    """The relay's target: another mailnest, so released mail can be looked at."""
    with ServerThread(Config()) as running:
        yield running


@pytest.fixture
def server_config(upstream: ServerThread) -> Config:
    return Config(relay=f"127.0.0.1:{upstream.smtp_port}", relay_allow=("allowed@example.com",))


def test_release_is_refused_outside_the_allow_list_and_allowed_inside(ui: UI, upstream: ServerThread) -> None:
    mail(ui.server, subject="release me")
    message_id = ui.api.get("/api/v1/messages").json()["messages"][0]["ID"]
    require_endpoint(ui.api, "GET", "/api/v1/webui")
    require_endpoint(ui.api, "POST", f"/api/v1/message/{message_id}/release", {"To": []})
    ui.open()
    ui.open_message("release me")
    page = ui.page
    page.locator("#release-btn").wait_for()
    page.click("#release-btn")
    page.fill("#release-to", "stranger@elsewhere.example")
    page.click("#release-submit")
    error = page.locator("#release-error")
    error.wait_for()
    assert error.inner_text().startswith("Release refused:")
    assert page.locator("#release-dialog").is_visible()
    assert upstream.call(upstream.store.count()) == 0

    page.fill("#release-to", "allowed@example.com")
    page.click("#release-submit")
    page.locator("#release-dialog").wait_for(state="hidden")
    assert upstream.call(upstream.store.count()) == 1
    assert ui.watch.foreign == []


def test_release_button_hidden_without_a_relay(browser: object, upstream: ServerThread) -> None:
    """The UI asks /api/v1/webui; with no relay configured there is nothing to release through."""
    from tests.web.conftest import Browser

    assert isinstance(browser, Browser)
    page = browser.context.new_page()
    browser.watch.reset(upstream.http_url)
    try:
        mail(upstream, subject="no relay here")
        page.goto(upstream.http_url + "/")
        page.locator(".row[data-id]").first.click()
        page.locator("#message[data-ready]").wait_for()
        page.wait_for_timeout(200)
        assert page.locator("#release-btn").is_hidden()
    finally:
        page.close()
