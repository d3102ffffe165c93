"""The client's message views: JSON parsing, links, one-time codes, attachments from the raw message. No sockets."""

from __future__ import annotations

import email
import email.policy
import random
import re
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from mailnest.models import Address
from mailnest.received import Mail, MailPage, MailSummary, _section


def _mail(*, text: str = "", html: str = "", subject: str = "Hello", raw: bytes = b"Subject: Hello\r\n\r\nbody\r\n",
          attachments: list[dict[str, object]] | None = None, envelope: dict[str, object] | None = None) -> Mail:
    return Mail.from_json({
        "ID": "abc", "MessageID": "m@x", "From": {"Name": "Shop", "Address": "shop@example.com"},
        "To": [{"Name": "", "Address": "Alice@Example.com"}], "Cc": [], "Bcc": [{"Name": "", "Address": "b@x.test"}],
        "ReplyTo": [], "ReturnPath": "bounce@example.com", "Subject": subject, "ListUnsubscribe": "",
        "Date": "2024-05-01T10:00:00Z", "Tags": ["t"], "Text": text, "HTML": html, "Size": len(raw),
        "Inline": [], "Attachments": attachments or [], "Envelope": envelope,
    }, raw)


def test_summary_and_page_from_mailpit_json() -> None:
    page = MailPage.from_json({
        "total": 3, "unread": 2, "count": 1, "messages_count": 2, "start": 0, "tags": ["x"],
        "messages": [{"ID": "1", "MessageID": "", "Read": True, "From": {"Name": "A", "Address": "a@x.test"},
                      "To": [{"Name": "", "Address": "B@x.test"}], "Cc": [], "Bcc": [], "ReplyTo": [],
                      "Subject": "S", "Created": "2024-05-01T10:00:00.123Z", "Size": 10, "Attachments": 1,
                      "Snippet": "s", "Tags": []}],
    })
    assert (page.total, page.unread, page.messages_count, len(page)) == (3, 2, 2, 1)
    [summary] = page
    assert isinstance(summary, MailSummary) and page[0] is summary
    assert summary.from_ == Address("A", "a@x.test")
    assert summary.recipients == ("b@x.test",)
    assert summary.created == datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert str(summary) == "'S' from A <a@x.test> to b@x.test"
    anonymous = MailSummary.from_json({"ID": "2", "From": {"Name": "", "Address": ""}, "Subject": "?"})
    assert anonymous.from_ is None and str(anonymous) == "'?' from (no From) to (nobody)"


def test_envelope_and_recipients() -> None:
    mail = _mail(envelope={"MailFrom": "bounce@example.com", "RcptTo": ["Alice@Example.com", "b@x.test"],
                           "Helo": "client", "Peer": "127.0.0.1:5000", "Received": "2024-05-01T10:00:00Z",
                           "AuthUser": None, "TLS": {"Version": "TLSv1.3", "Cipher": "TLS_AES_128_GCM_SHA256"}})
    assert mail.envelope is not None
    assert mail.envelope.rcpt_tos == ("Alice@Example.com", "b@x.test")
    assert mail.envelope.tls is not None and mail.envelope.tls.version == "TLSv1.3"
    assert mail.recipients == ("alice@example.com", "b@x.test")
    assert _mail().envelope is None  # a server that reports no envelope (Mailpit)
    assert _mail().recipients == ("alice@example.com", "b@x.test")


def test_links_in_text_then_html_each_once_entities_decoded() -> None:
    mail = _mail(
        text="Confirm: https://app.example/confirm?t=1&u=2.\nDocs (https://en.example/wiki/A_(b)) and <https://x.example/y>",
        html='<p><a href="https://app.example/confirm?t=1&amp;u=2">Confirm</a> '
             '<a href="/relative">rel</a> <a href="javascript:alert(1)">js</a> '
             '<a href="mailto:help@app.example">help</a> or paste https://app.example/p&#x3F;q=1</p>'
             '<style>a { background: url(https://cdn.example/bg.png) }</style>',
    )
    assert mail.links == (
        "https://app.example/confirm?t=1&u=2",
        "https://en.example/wiki/A_(b)",
        "https://x.example/y",
        "mailto:help@app.example",
        "https://app.example/p?q=1",
    )


def test_first_link_by_substring_and_regex_and_a_clear_failure() -> None:
    mail = _mail(text="https://a.example/home https://a.example/verify/XYZ https://a.example/verify/2")
    assert mail.first_link() == "https://a.example/home"
    assert mail.first_link("/verify/") == "https://a.example/verify/XYZ"
    assert mail.first_link(re.compile(r"/verify/\d+$")) == "https://a.example/verify/2"
    with pytest.raises(LookupError, match=r"'/reset/' in message 'Hello'; its links: \['https://a.example/home'"):
        mail.first_link("/reset/")


def test_codes_default_pattern_skips_urls_and_addresses() -> None:
    mail = _mail(subject="Your code 4821",
                 text="Use 973312 to sign in (or https://a.example/login/55555555 as 12345678@x.example).\n"
                      "Order 12-3456789x, phone 123, ref 0042.")
    assert mail.codes() == ["4821", "973312", "0042"]
    assert mail.codes(r"sign in \(or") == ["sign in (or"]
    assert mail.codes(re.compile(r"Use (\d+)")) == ["973312"]


def test_codes_from_html_when_there_is_no_text_body() -> None:
    mail = _mail(subject="Sign in", html="<style>.x{width:1234px}</style><p>Code: <b>246810</b></p>")
    assert mail.codes() == ["246810"]


def test_a_code_only_the_html_part_holds_is_found_too() -> None:
    """Issue 16 item 11: with a text part, the HTML part was not read, and a code only it held was missed."""
    mail = _mail(text="Welcome aboard! Your code is 1357.", html="<p>Or use the backup code <b>864200</b>.</p>"
                 "<p>Your code is 1357.</p>")
    assert mail.codes() == ["1357", "864200"]  # the text part's first, each once


def test_email_headers_and_attachment_content_from_raw() -> None:
    message = EmailMessage()
    message["Subject"] = "=?utf-8?q?R=C3=A9sum=C3=A9?="
    message["To"] = "a@x.test"
    message["Received"] = "from one"
    message.add_header("Received", "from two")
    message.set_content("see attached")
    message.add_attachment(b"\x00\x01binary", maintype="application", subtype="octet-stream", filename="a.bin")
    message.add_attachment("second", filename="b.txt")
    raw = message.as_bytes()
    mail = _mail(raw=raw, attachments=[
        {"PartID": "2", "FileName": "a.bin", "ContentType": "application/octet-stream", "ContentID": "", "Size": 8},
        {"PartID": "", "FileName": "b.txt", "ContentType": "text/plain", "ContentID": "", "Size": 7},
    ])
    assert mail.email["Subject"] == "Résumé"
    assert mail.headers["Received"] == ["from one", "from two"]
    first, second = mail.attachments
    assert first.content() == b"\x00\x01binary"  # found by its section number
    assert second.content() == b"second\n"  # no usable section number: found by what the listing says
    wrong = _mail(raw=raw, attachments=[{"PartID": "2", "FileName": "missing.pdf", "ContentType": "application/pdf"}])
    with pytest.raises(LookupError, match=r"missing\.pdf"):
        wrong.attachments[0].content()


def test_section_numbers_reach_into_attached_messages() -> None:
    inner = EmailMessage()
    inner["Subject"] = "forwarded"
    inner.set_content("inner body")
    inner.add_attachment(b"deep", maintype="application", subtype="octet-stream", filename="deep.bin")
    outer = EmailMessage()
    outer.set_content("outer body")
    outer.add_attachment(inner)
    parsed = email.message_from_bytes(outer.as_bytes(), policy=email.policy.default)
    assert _section(parsed, "1").get_content() == "outer body\n"  # type: ignore[union-attr]
    assert _section(parsed, "2.1").get_content() == "inner body\n"  # type: ignore[union-attr]
    assert _section(parsed, "2.2").get_payload(decode=True) == b"deep"  # type: ignore[union-attr]
    assert _section(parsed, "3") is None and _section(parsed, "x") is None
    single = email.message_from_bytes(b"Subject: s\r\n\r\nonly\r\n", policy=email.policy.default)
    assert _section(single, "1") is single and _section(single, "2") is None


def test_trimming_and_address_masking_give_what_the_simple_versions_gave() -> None:
    from mailnest import received

    def trim_before(url: str) -> str:
        url = url.rstrip(received._TRAILING_PUNCTUATION)
        for opening, closing in ("()", "[]", "{}"):
            while url.endswith(closing) and url.count(closing) > url.count(opening):
                url = url[:-1].rstrip(received._TRAILING_PUNCTUATION)
        return url

    rng = random.Random(3986)
    brackets = ["(", ")", "[", "]", "{", "}", ".", ",", "x", "'", "!"]
    text = ["a", "b", ".", "+", "-", "@", " ", "é", "_", "1", "c.d", "@x.y", "!"]
    for _ in range(20000):
        url = "".join(rng.choice(brackets) for _ in range(rng.randint(0, 15)))
        assert received._trim(url) == trim_before(url), url
        words = "".join(rng.choice(text) for _ in range(rng.randint(0, 25)))
        assert received._without_addresses(words) == received._EMAIL_ADDRESS.sub(" ", words), words
