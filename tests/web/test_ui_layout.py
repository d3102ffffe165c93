"""Themes and small screens: the UI follows the system's light/dark choice and works one pane at a time."""

from __future__ import annotations

from tests.web.conftest import UI, mail


def background(ui: UI, selector: str = "body") -> str:
    return ui.page.locator(selector).evaluate("el => getComputedStyle(el).backgroundColor")


def test_light_and_dark_follow_the_system(ui: UI) -> None:
    mail(ui.server, subject="theme", html="<p>white paper</p>")
    ui.page.emulate_media(color_scheme="light")
    ui.open()
    light = background(ui)
    ui.page.emulate_media(color_scheme="dark")
    dark = background(ui)
    assert light == "rgb(255, 255, 255)"
    assert dark != light
    red, green, blue = (int(x) for x in dark[4:-1].split(","))
    assert max(red, green, blue) < 60  # a dark background, not just a different light one
    ui.open_message("theme")
    # Mail is designed for white paper: the preview keeps its own light background in the dark theme.
    paper = ui.page.frame_locator("#html-frame").locator("body").evaluate("el => getComputedStyle(el).backgroundColor")
    assert paper == "rgb(255, 255, 255)"


def test_phone_shows_one_pane_at_a_time(ui: UI) -> None:
    mail(ui.server, subject="small screen", text="Readable on a phone.\n")
    ui.page.set_viewport_size({"width": 390, "height": 844})
    ui.open()
    assert ui.page.locator(".list-pane").is_visible()
    assert ui.page.locator(".message-pane").is_hidden()
    no_sideways_scroll = "() => document.documentElement.scrollWidth <= window.innerWidth"
    assert ui.page.evaluate(no_sideways_scroll)
    ui.open_message("small screen")
    assert ui.page.locator(".list-pane").is_hidden()
    assert ui.page.locator(".message-pane").is_visible()
    assert ui.page.evaluate(no_sideways_scroll)
    ui.tab("text")
    assert ui.page.locator("#text-body").is_visible()
    ui.page.click("#back-btn")
    assert ui.page.locator(".list-pane").is_visible()
    assert ui.page.locator(".message-pane").is_hidden()
