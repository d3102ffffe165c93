"""README recipe: a Flask app sending a sign-up confirmation with Flask-Mail; the test follows the link."""

from __future__ import annotations

import secrets

import pytest
from flask import Flask, request, url_for
from flask_mail import Mail, Message

from mailnest.pytest_plugin import Inbox


def create_app(config: dict[str, object]) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    mail = Mail(app)
    pending: dict[str, str] = {}

    @app.post("/signup")
    def signup() -> tuple[str, int]:
        token = secrets.token_urlsafe(16)
        pending[token] = request.form["email"]
        link = url_for("confirm", token=token, _external=True)
        mail.send(Message("Confirm your account", recipients=[request.form["email"]],
                          body=f"Welcome! Confirm here: {link}", html=f'<a href="{link}">Confirm</a>'))
        return "check your mail", 202

    @app.get("/confirm/<token>")
    def confirm(token: str) -> tuple[str, int]:
        return (f"confirmed {pending.pop(token)}", 200) if token in pending else ("unknown link", 404)

    return app


@pytest.fixture
def app(mailnest: Inbox) -> Flask:
    return create_app({"MAIL_SERVER": mailnest.smtp_host, "MAIL_PORT": mailnest.smtp_port,
                       "MAIL_DEFAULT_SENDER": "hello@app.example", "SERVER_NAME": "app.example"})


def test_signup_link(app: Flask, mailnest: Inbox) -> None:
    client, alice = app.test_client(), mailnest.address("alice")
    client.post("/signup", data={"email": alice})
    [mail] = mailnest.wait_for(to=alice)
    response = client.get(mail.first_link("/confirm/"))
    assert response.status_code == 200 and response.text == f"confirmed {alice}"


def test_a_confirmation_link_works_once(app: Flask, mailnest: Inbox) -> None:
    client = app.test_client()
    client.post("/signup", data={"email": mailnest.address("bob")})
    link = mailnest.wait_for()[0].first_link("/confirm/")
    assert client.get(link).status_code == 200
    assert client.get(link).status_code == 404
