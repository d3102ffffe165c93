"""Web UI speed with a big store: inbox first render and opening a message, in headless Chromium.

    .venv/bin/python benchmarks/ui_bench.py [--messages 100000] [--runs 7] [--db /tmp/ui-bench.db]

Fills a fresh mailnest with N messages (straight into the store, to keep the fill quick), then drives Debian's
Chromium through Playwright and prints, in milliseconds:
- inbox first render: navigation start -> the first rows of the list are in the DOM (the page's own
  `mailnest:inbox-ready` performance mark), on a fresh page each run;
- open a message: click on a row -> header rendered and the sanitized HTML preview loaded
  (`mailnest:message-ready`);
- jump to the middle of the list: scroll position set -> those rows rendered;
- search: query typed -> matching rows rendered.
The budget for the first two is 300 ms each. Figures, not pass/fail: the exit status is 0 either way.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from mailnest import Config, ServerThread
from mailnest.models import Envelope

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BUDGET_MS = 300.0

WORDS = ["invoice", "report", "welcome", "reset", "password", "order", "shipped", "meeting", "agenda", "lunch", "quarterly", "update", "newsletter", "receipt", "reminder", "alert", "weekly", "digest", "account", "security", "notice"]


def message(i: int) -> tuple[bytes, Envelope]:
    word = WORDS[i % len(WORDS)]
    other = WORDS[(i * 7) % len(WORDS)]
    to = f"user{i % 50}@example.com"
    html = (f"<html><body><h1>{word.title()} {i}</h1><p style='color:#333'>Dear user, your {other} "
            f"<a href='https://example.com/{word}/{i}'>is here</a>.</p>"
            "<img src='https://tracker.example/p.gif'></body></html>")
    raw = (f"From: {other.title()} Team <{other}@service{i % 13}.example>\r\nTo: {to}\r\n"
           f"Subject: {word.title()} number {i} about {other}\r\nMessage-ID: <bench-{i}@mailnest>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
           f"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDear user, your {other} is here. "
           f"Message {i}.\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--b--\r\n").encode()
    return raw, Envelope(mail_from=f"bounce@service{i % 13}.example", rcpt_tos=(to,))


async def fill(server: ServerThread, count: int) -> None:
    batch = 500
    for start in range(0, count, batch):
        await asyncio.gather(*(server.store.add(*message(i)) for i in range(start, min(count, start + batch))))


def summary(name: str, values: list[float], budget: float | None = None) -> str:
    median = statistics.median(values)
    worst = max(values)
    verdict = "" if budget is None else ("  within budget" if worst < budget else f"  OVER the {budget:.0f} ms budget")
    return f"{name:<28} median {median:7.1f} ms   max {worst:7.1f} ms   runs {len(values)}{verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--db", type=Path, help="keep the store in this file; a file already holding mail is reused")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with ServerThread(Config(max_messages=0, db=args.db)) as server:
        stored = server.call(server.store.count())
        if stored:
            print(f"reusing {stored:,} messages in {args.db}")
        else:
            started = time.perf_counter()
            server.call(fill(server, args.messages), timeout=3600)
            filled = time.perf_counter() - started
            print(f"stored {args.messages:,} messages in {filled:.1f} s ({args.messages / filled:,.0f}/s)")

        profile = tempfile.mkdtemp(prefix="mailnest-bench-")
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 800})
            page = context.new_page()
            url = server.http_url + "/"
            page.goto(url)  # warm-up: the first load also primes SQLite's page cache
            page.wait_for_selector(".row[data-id]")

            first_render: list[float] = []
            list_request: list[float] = []
            for _ in range(args.runs):
                page.goto("about:blank")
                page.goto(url)
                page.wait_for_selector(".row[data-id]")
                page.wait_for_function("() => performance.getEntriesByName('mailnest:inbox-ready').length > 0")
                first_render.append(page.evaluate(
                    "() => performance.getEntriesByName('mailnest:inbox-ready')[0].startTime"))
                list_request.append(page.evaluate("""() => {
                    const e = performance.getEntriesByType('resource').find(r => r.name.includes('/api/v1/messages?'));
                    return e.responseEnd - e.startTime;
                }"""))
            print(summary("inbox first render", first_render, BUDGET_MS))
            print(summary("  of which GET /api/v1/messages", list_request))

            opening: list[float] = []
            for index in range(args.runs):
                opening.append(page.evaluate("""async (index) => {
                    const row = document.querySelector(`.row[data-index="${index}"]`);
                    const ready = new Promise(r => document.addEventListener('mailnest:message-ready', r, {once: true}));
                    const t0 = performance.now();
                    row.click();
                    await ready;
                    return performance.now() - t0;
                }""", index + 1))
            print(summary("open a message", opening, BUDGET_MS))

            jumping: list[float] = []
            for fraction in (0.5, 0.25, 0.75, 0.9, 0.1, 0.6, 0.4)[: args.runs]:
                jumping.append(page.evaluate("""async (fraction) => {
                    const list = document.querySelector('#list');
                    const t0 = performance.now();
                    list.scrollTop = Math.floor(list.scrollHeight * fraction);
                    const target = Math.floor(list.scrollTop / 72) + 1;
                    while (!document.querySelector(`.row[data-id][data-index="${target}"]`)) {
                      await new Promise(r => requestAnimationFrame(r));
                    }
                    return performance.now() - t0;
                }""", fraction))
            print(summary("jump to a deep position", jumping))

            searching: list[float] = []
            for word in WORDS[: args.runs]:
                searching.append(page.evaluate("""async (word) => {
                    const input = document.querySelector('#search');
                    const loaded = new Promise(r => document.addEventListener('mailnest:list-loaded', r, {once: true}));
                    const t0 = performance.now();
                    input.value = word;
                    input.form.requestSubmit();
                    const event = await loaded;
                    return event.detail.ok ? performance.now() - t0 : -1;
                }""", word))
            if min(searching) < 0:
                print("search (free text)           the API answered the search with an error")
            else:
                print(summary("search (free text)", searching))
            context.close()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
