"""The UI's HTTP routes over a real socket: the page's security headers, static files, the preview routes."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from mailnest import ServerThread
from tests.web.conftest import mail


def csp(response: httpx.Response) -> dict[str, str]:
    directives = {}
    for part in response.headers["content-security-policy"].split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value
    return directives


def test_page_has_a_strict_policy_and_security_headers(server: ServerThread, api: httpx.Client) -> None:
    response = api.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert re.search(r"<script type=\"module\" src=\"static/js/main.js\?v=\w+\"></script>", response.text)
    policy = csp(response)
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"  # no inline script, no eval
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src" if "object-src" in policy else "default-src"] == "'none'"
    assert policy["require-trusted-types-for"] == "'script'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


def test_static_files_are_served_with_types_and_headers(server: ServerThread, api: httpx.Client) -> None:
    for path, kind in [("/static/js/main.js", "javascript"), ("/static/css/app.css", "text/css"),
                       ("/static/icons/mailnest.svg", "image/svg+xml")]:
        response = api.get(path)
        assert response.status_code == 200, path
        assert kind in response.headers["content-type"], path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in response.headers["content-security-policy"]
    assert api.get("/static/nope.js").status_code == 404
    assert response.headers["cache-control"] == "no-cache"


def test_static_references_carry_a_version_and_cache_for_good(server: ServerThread, api: httpx.Client) -> None:
    page = api.get("/").text
    versions = set(re.findall(r'"static/[^"?]+\?v=(\w+)"', page))
    assert len(versions) == 1  # one version for all assets, in every reference
    (version,) = versions
    assert re.findall(r'"/?static/[^"?]+"', page) == []
    main = api.get(f"/static/js/main.js?v={version}")
    assert main.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert f'from "./api.js?v={version}"' in main.text
    assert f'url("../icons/paperclip.svg?v={version}")' in api.get("/static/css/app.css").text
    stale = api.get("/static/js/main.js?v=old")
    assert stale.headers["cache-control"] == "no-cache"
    again = api.get("/static/js/main.js", headers={"If-None-Match": main.headers["etag"]})
    assert again.status_code == 304
    assert api.get("/static/../ui.py").status_code == 404


def test_every_module_the_page_imports_exists(server: ServerThread, api: httpx.Client) -> None:
    main = api.get("/static/js/main.js").text
    page = api.get("/").text
    modules = set(re.findall(r'from "\./([a-z]+\.js)\?v=\w+"', main)) | set(re.findall(r'static/js/([a-z]+\.js)', page))
    assert modules >= {"api.js", "inbox.js", "message.js", "main.js"}
    for name in modules:
        source = api.get(f"/static/js/{name}")
        assert source.status_code == 200, name
        # The rule that keeps message data from becoming markup: no HTML-parsing sinks anywhere in the UI.
        code = re.sub(r"^\s*(//|/?\*).*$", "", source.text, flags=re.M)
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                     "createContextualFragment", "DOMParser", "srcdoc"):
            assert sink not in code, f"{name} uses {sink}"
        for imported in re.findall(r'from "\./([a-z]+\.js)', source.text):
            assert api.get(f"/static/js/{imported}").status_code == 200


def test_preview_is_sanitized_under_a_script_free_policy(server: ServerThread, api: httpx.Client) -> None:
    mail(server, subject="preview", html='<p onclick="x()">Hi<script>alert(1)</script>'
                                          '<img src="https://img.example/a.png"></p><a href="https://x.example/">l</a>',
         text="Text body https://text.example/t\n")
    message_id = api.get("/api/v1/messages").json()["messages"][0]["ID"]
    response = api.get(f"/view/{message_id}.preview.html")
    assert response.status_code == 200
    assert "Hi" in response.text and "<script" not in response.text and "onclick" not in response.text
    assert "img.example" not in response.text
    policy = csp(response)
    assert policy["default-src"] == "'none'"
    assert "script-src" not in policy  # falls back to default-src 'none': no script at all
    assert policy["form-action"] == "'none'"
    assert policy["img-src"] == "'self' data:"
    assert policy["sandbox"] == "allow-popups allow-popups-to-escape-sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "SAMEORIGIN"

    remote = api.get(f"/view/{message_id}.preview.html", params={"remote": "1"})
    assert "https://img.example/a.png" in remote.text
    assert "https:" in csp(remote)["img-src"]
    assert "script-src" not in csp(remote)

    info = api.get(f"/view/{message_id}.json").json()
    assert info["RemoteImages"] == 1
    assert info["Links"] == ["https://x.example/", "https://text.example/t"]

    text = api.get(f"/view/{message_id}.txt")
    assert text.text == "Text body https://text.example/t\n"
    assert text.headers["content-type"].startswith("text/plain")
    assert "sandbox" in text.headers["content-security-policy"]

    latest = api.get("/view/latest.preview.html")
    assert latest.status_code == 200 and "Hi" in latest.text and "<script" not in latest.text
    mail(server, subject="newer, text only")
    assert api.get("/view/latest.txt").text.startswith("Hello there.")
    assert api.get("/view/latest.preview.html").status_code == 404  # the newest has no HTML part
    narrowed = api.get("/view/latest.preview.html", params={"query": "-subject:newer"})
    assert narrowed.status_code == 200 and "Hi" in narrowed.text
    assert api.get("/view/latest.preview.html", params={"query": 'subject:"open'}).status_code == 400


def test_preview_of_a_missing_message_is_a_404(server: ServerThread, api: httpx.Client) -> None:
    assert api.get("/view/nope.html").status_code == 404
    assert api.get("/view/nope.preview.html").status_code == 404
    assert api.get("/view/nope.txt").status_code == 404
    response = api.get("/view/nope.json")
    assert response.status_code == 404 and response.json()["Error"]
    assert api.get("/view/latest.html").status_code == 404
    assert api.get("/view/latest.preview.html").status_code == 404


def test_preview_of_a_text_only_message_says_so(server: ServerThread, api: httpx.Client) -> None:
    mail(server, subject="plain", text="just text <b>not bold</b>\n")
    message_id = api.get("/api/v1/messages").json()["messages"][0]["ID"]
    response = api.get(f"/view/{message_id}.preview.html")
    assert response.status_code == 404 and "no HTML part" in response.text  # Mailpit's status, with a reason
    original = api.get(f"/view/{message_id}.html")
    assert original.status_code == 404 and "no HTML part" in original.text
    assert api.get(f"/view/{message_id}.json").json() == {"ID": message_id, "RemoteImages": 0, "Links": [], "LinkText": {}}


def test_latest_preview_reads_dates_in_tz_as_the_api_does(server: ServerThread, api: httpx.Client) -> None:
    """`/view/latest.html?query=after:...&tz=...` finds what `/api/v1/message/latest` finds with the same query."""
    mail(server, subject="dated", html="<p>dated preview</p>")
    created = datetime.fromisoformat(api.get("/api/v1/messages").json()["messages"][0]["Created"])
    local = datetime.now().astimezone().utcoffset() or timedelta(0)
    zone = "Pacific/Kiritimati" if local < timedelta(hours=10) else "Etc/GMT+12"  # far from the server's own zone
    # An hour before the message, written as a wall-clock time in that zone, without a zone.
    wall = (created - timedelta(hours=1)).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M:%S")
    params = {"query": f"after:{wall}", "tz": zone}
    assert api.get("/api/v1/message/latest", params=params).json()["Subject"] == "dated"
    assert api.get("/api/v1/message/latest", params={"query": f"after:{wall}"}).status_code == 404
    preview = api.get("/view/latest.html", params=params)
    assert preview.status_code == 200 and "dated preview" in preview.text
    assert api.get("/view/latest.html", params={"query": f"after:{wall}"}).status_code == 404
    assert api.get("/view/latest.txt", params=params).status_code == 200
    assert api.get("/view/latest.json", params=params).json()["ID"]
    bad = api.get("/view/latest.html", params={"query": "after:2026-01-01", "tz": "Mars/Olympus"})
    assert bad.status_code == 400 and "Mars/Olympus" in bad.text
    assert api.get("/view/latest.json", params={"tz": "Mars/Olympus"}).status_code == 400


def test_opening_a_message_sanitizes_its_html_once(server: ServerThread, api: httpx.Client,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The page asks for the preview and for what it blocked at the same moment: one sanitizing pass serves
    both (a 5 MB newsletter costs it once, not twice)."""
    caplog.set_level(logging.DEBUG, logger="mailnest.http")
    mail(server, subject="newsletter", html="<p>" + "<b>news</b> <img src='https://t.example/p.gif'> " * 20000)
    message_id = api.get("/api/v1/messages").json()["messages"][0]["ID"]

    async def open_like_the_page() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
            return list(await asyncio.gather(client.get(f"/view/{message_id}.preview.html"),
                                             client.get(f"/view/{message_id}.json")))

    html, info = asyncio.run(open_like_the_page())
    assert html.status_code == 200 and "news" in html.text and info.json()["RemoteImages"] == 20000
    assert api.get(f"/view/{message_id}.json").json()["RemoteImages"] == 20000  # opened again: no new pass

    def passes() -> int:
        return sum(1 for r in caplog.records if r.getMessage().startswith(f"sanitized the HTML of {message_id}"))

    assert passes() == 1
    assert "t.example" in api.get(f"/view/{message_id}.preview.html", params={"remote": "1"}).text  # its own pass
    assert passes() == 2
