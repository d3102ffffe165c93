"""README recipe: a Django project's mail, sent through Django's SMTP backend to the test's mailnest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core import mail
from django.test.utils import override_settings

from mailnest.pytest_plugin import Inbox

if not settings.configured:  # a real project has its settings module; this test stands alone
    settings.configure(DEFAULT_FROM_EMAIL="noreply@shop.example")


@pytest.fixture
def django_smtp(mailnest: Inbox) -> Iterator[None]:
    # Django's own test runner (and pytest-django) swap in the in-memory backend; put SMTP back, aimed at mailnest.
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
                           EMAIL_HOST=mailnest.smtp_host, EMAIL_PORT=mailnest.smtp_port):
        yield


def test_password_reset_mail(mailnest: Inbox, django_smtp: None) -> None:
    alice = mailnest.address("alice")
    mail.send_mail("Reset your password", "Reset it here: https://shop.example/reset/Zx81/", None, [alice],
                   html_message='<a href="https://shop.example/reset/Zx81/">Reset your password</a>')
    [sent] = mailnest.wait_for(to=alice)
    assert sent.subject == "Reset your password"
    assert sent.first_link("/reset/") == "https://shop.example/reset/Zx81/"
    assert sent.envelope is not None and sent.envelope.mail_from == "noreply@shop.example"


def test_bcc_is_seen_from_the_envelope(mailnest: Inbox, django_smtp: None) -> None:
    alice, audit = mailnest.address("alice"), mailnest.address("audit")
    mail.EmailMessage("Invoice 42", "Attached.", to=[alice], bcc=[audit]).send()
    [sent] = mailnest.assert_sent(to=audit, subject="Invoice 42")
    assert audit not in sent.raw.decode()  # Bcc never reaches the headers; the envelope says who got it
    assert sorted(sent.recipients) == sorted([alice, audit])
