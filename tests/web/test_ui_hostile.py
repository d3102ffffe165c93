"""Hostile mail in a real browser: nothing in a message may run script in the UI or reach the network.

Every payload, if it ever ran, would set `window.__pwned`, open an alert and ask the test server for /pwned;
the harness also refuses (and records) every request to any host but the test server.
"""

from __future__ import annotations

import base64
import smtplib

from tests.web.conftest import UI, send_raw

PWN = "window.__pwned=1;top.__pwned=1;alert(1);new Image().src='/pwned'"
EVIL = "https://evil.invalid"


def encoded_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


HTML_BODY = f"""<html><head>
<meta http-equiv="refresh" content="0;url={EVIL}/refresh">
<base href="{EVIL}/">
<link rel="stylesheet" href="{EVIL}/link.css">
<script>{PWN}</script>
<style>@import url({EVIL}/import.css); body {{ background: url({EVIL}/bg.png) }}
@font-face {{ font-family: x; src: url({EVIL}/font.woff) }} h1 {{ font-family: x }}
.esc {{ background: \\75 rl({EVIL}/escaped.png) }}</style>
</head><body onload="{PWN}">
<h1 id="title">Totally normal mail</h1>
<img src="x" onerror="{PWN}">
<img src="{EVIL}/track.gif" id="tracker">
<img srcset="{EVIL}/srcset.png 1x">
<svg onload="{PWN}"><script>{PWN}</script><image href="{EVIL}/svg.png"/></svg>
<math><maction actiontype="statusline" xlink:href="javascript:{PWN}">m</maction></math>
<a id="jslink" href="javascript:{PWN}">click me</a>
<a id="entitylink" href="&#106;avascript:{PWN}">or me</a>
<a id="datalink" href="data:text/html,&lt;script&gt;{PWN}&lt;/script&gt;">or me too</a>
<div id="clicky" onclick="{PWN}" onmouseover="{PWN}" style="background-image:url({EVIL}/div.png)">hover</div>
<form action="/pwned" method="post"><input name="q" autofocus onfocus="{PWN}"><button id="submit">go</button></form>
<iframe src="{EVIL}/frame"></iframe><iframe srcdoc="<script>{PWN}</script>"></iframe>
<object data="{EVIL}/object"></object><embed src="{EVIL}/embed">
<video poster="{EVIL}/poster.png" src="{EVIL}/v.mp4" autoplay></video><audio src="{EVIL}/a.mp3" autoplay></audio>
<details open ontoggle="{PWN}">d</details>
<table background="{EVIL}/table.png"><tr><td class="esc">cell</td></tr></table>
<noscript><p title="</noscript><img src=x onerror={PWN}>"></p></noscript>
<template><script>{PWN}</script></template>
<a id="ext" href="{EVIL}/phish">a normal-looking link</a>
</body></html>"""


def hostile_message() -> bytes:
    script = f"<script>{PWN}</script>"
    img = f'<img src=x onerror="{PWN}">'
    headers = [
        f'From: "{img}" <evil@example.com>',
        f'To: "<b onmouseover={PWN}>bob</b>" <alice@example.com>',
        f'Reply-To: "<iframe src=javascript:{PWN}>" <reply@example.com>',
        f"Subject: {img}{script} {encoded_word('<svg onload=alert(1)>')}",
        f"X-Evil: {script}",
        f"X-Evil-Link: javascript:{PWN}",
        f"X-Tags: {img}",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="outer"',
    ]
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" onload="{PWN}"><script>{PWN}</script><rect width="4" height="4"/></svg>'
    parts = [
        "--outer",
        'Content-Type: multipart/alternative; boundary="alt"',
        "",
        "--alt",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"{script} javascript:{PWN} {EVIL}/in-text",
        "--alt",
        "Content-Type: text/html; charset=utf-8",
        "",
        HTML_BODY,
        "--alt--",
        "--outer",
        f'Content-Type: text/html; name="{img}.html"',
        f'Content-Disposition: attachment; filename="{img}.html"',
        "",
        script,
        "--outer",
        'Content-Type: image/svg+xml; name="evil.svg"',
        'Content-Disposition: attachment; filename="evil.svg"',
        "",
        svg,
        "--outer",
        f'Content-Type: application/x-evil"><script>{PWN}</script>',
        f"Content-Disposition: attachment; filename*=UTF-8''%3Cscript%3E{PWN.replace(';', '%3B')}%3C%2Fscript%3E",
        "",
        "payload",
        "--outer--",
        "",
    ]
    return "\r\n".join([*headers, "", *parts]).encode()


def assert_nothing_ran_or_left(ui: UI) -> None:
    page = ui.page
    assert page.evaluate("window.__pwned") is None
    for frame in page.frames:
        try:
            pwned = frame.evaluate("() => window.__pwned")
        except Exception:  # a frame that has no script context at all is fine too
            continue
        assert pwned is None, frame.url
    assert ui.watch.dialogs == []
    assert not [url for url in ui.watch.requests if "/pwned" in url]
    assert ui.watch.foreign == [], ui.watch.foreign
    # Had a script survived sanitizing, the sandbox or the CSP would have had to block it: they never should.
    blocked = [text for kind, text in ui.watch.console
               if "Blocked script execution" in text or "Refused to execute" in text or "Refused to run" in text]
    assert blocked == []


def test_hostile_mail_runs_nothing_and_loads_nothing(ui: UI) -> None:
    send_raw(ui.server, hostile_message())
    with smtplib.SMTP("127.0.0.1", ui.server.smtp_port, local_hostname=f"<svg/onload={PWN.replace(' ', '')}>") as c:
        c.sendmail("helo@example.com", ["alice@example.com"],
                   b"From: helo@example.com\r\nTo: alice@example.com\r\nSubject: hostile helo\r\n\r\nx\r\n")
    ui.open()
    page = ui.page
    row = page.locator(".row[data-id]").nth(1)
    row.wait_for()
    assert "<img src=x onerror=" in row.inner_text()  # shown as text, not markup
    assert page.locator(".row img, .row script, .row svg, .row b, .row iframe").count() == 0

    ui.open_message("<script>")
    assert "<script>" in page.inner_text("#msg-subject")
    assert "<svg onload=alert(1)>" in page.inner_text("#msg-subject")
    assert "<img src=x onerror=" in page.inner_text("#msg-meta")
    assert page.locator("#message script, #message svg, #message iframe:not(#html-frame), #msg-meta img").count() == 0

    frame = page.frame_locator("#html-frame")
    assert frame.locator("#title").inner_text() == "Totally normal mail"
    assert frame.locator("script, svg, math, iframe, object, embed, form, input, base, link, video").count() == 0
    assert frame.locator("meta").count() == 3  # only the preview document's own charset, viewport, referrer
    # Try to make something happen inside the preview.
    frame.locator("#clicky").hover()
    frame.locator("#clicky").click()
    frame.locator("#jslink").click()
    frame.locator("#entitylink").click()
    frame.locator("#datalink").click()
    frame.locator("details").click()
    page.wait_for_timeout(1200)  # long enough for the meta refresh, had it survived
    assert page.frame_locator("#html-frame").locator("#title").count() == 1  # still our preview
    assert frame.locator("#ext").get_attribute("rel") == "noopener noreferrer"
    assert frame.locator("#tracker").get_attribute("src") is None

    for tab in ("text", "headers", "source", "envelope", "attachments", "links"):
        ui.tab(tab)
        page.wait_for_timeout(150)
    headers_text = page.inner_text("#headers-table")
    assert f"<script>{PWN}</script>" in headers_text
    assert f"<script>{PWN}</script>" in page.locator("#source-body").text_content()
    assert "<img src=x onerror=" in page.inner_text("#attachments-body")
    page.wait_for_function("() => [...document.querySelectorAll('#attachments-body img')].every(i => i.complete)")
    assert page.locator("#links-body a").evaluate_all("links => links.map(a => a.protocol)") == ["https:", "https:"]

    ui.open_message("hostile helo")
    ui.tab("envelope")
    assert "<svg/onload=" in page.inner_text("#envelope-body")
    assert page.locator("#envelope-body svg").count() == 0

    page.wait_for_timeout(300)
    assert_nothing_ran_or_left(ui)


def test_preview_opened_directly_is_still_script_free(ui: UI) -> None:
    """A reader may open /view/ID.html in its own tab: the CSP sandbox holds without the iframe."""
    send_raw(ui.server, hostile_message())
    message_id = ui.api.get("/api/v1/messages").json()["messages"][0]["ID"]
    ui.page.goto(f"{ui.url}/view/{message_id}.preview.html")
    ui.page.locator("#title").wait_for()
    ui.page.locator("#jslink").click()
    ui.page.locator("#clicky").click()
    ui.page.wait_for_timeout(1200)
    assert ui.page.url.endswith(f"/view/{message_id}.preview.html")
    assert_nothing_ran_or_left(ui)
