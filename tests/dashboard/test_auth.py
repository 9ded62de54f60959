"""Logging in and out, sessions, cookies and login throttling."""

from __future__ import annotations

import base64
import json

import itsdangerous

from pipeline.users import Role
from tests.dashboard.conftest import PASSWORD, USERS, Seeded, csrf_of, make_client


def _login(client, name: str, password: str, **extra: str):  # type: ignore[no-untyped-def]
    data = {"username": name, "password": password, "csrf_token": csrf_of(client), **extra}
    return client.post("/login", data=data)


def test_anonymous_pages_redirect_to_login(seeded: Seeded) -> None:
    with make_client(seeded.ws) as client:
        response = client.get("/lines/test")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=/lines/test"
        htmx = client.get("/lines/table", headers={"HX-Request": "true"})
        assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")


def test_login_sets_a_signed_httponly_lax_cookie_and_follows_next(seeded: Seeded) -> None:
    with make_client(seeded.ws) as client:
        response = _login(client, USERS[Role.OPERATOR], PASSWORD, next="/models")
        assert response.status_code == 303 and response.headers["location"] == "/models"
        cookie = response.headers["set-cookie"].lower()
        assert "qcflow_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
        assert "secure" not in cookie  # https_only is off by default in tests
        assert client.get("/models").status_code == 200


def test_secure_cookie_when_https_only(seeded: Seeded) -> None:
    with make_client(seeded.ws, https_only=True) as client:
        response = _login(client, USERS[Role.OPERATOR], PASSWORD)
        assert "secure" in response.headers["set-cookie"].lower()


def test_next_must_be_a_local_path(seeded: Seeded) -> None:
    with make_client(seeded.ws) as client:
        response = _login(client, USERS[Role.OPERATOR], PASSWORD, next="//evil.example/x")
        assert response.headers["location"] == "/"


def test_wrong_password_and_unknown_user_are_refused_alike(seeded: Seeded) -> None:
    with make_client(seeded.ws) as client:
        wrong = _login(client, USERS[Role.ADMIN], "not the password")
        unknown = _login(client, "nobody", PASSWORD)
        assert wrong.status_code == unknown.status_code == 401
        assert "Wrong user name or password" in wrong.text and "Wrong user name or password" in unknown.text
        assert client.get("/").status_code == 303


def test_session_forged_with_another_key_is_not_trusted(seeded: Seeded) -> None:
    payload = base64.b64encode(json.dumps({"user": USERS[Role.ADMIN]}).encode())
    forged = itsdangerous.TimestampSigner("guessed-secret").sign(payload).decode()
    with make_client(seeded.ws) as client:
        client.cookies.set("qcflow_session", forged)
        assert client.get("/").status_code == 303
    with make_client(seeded.ws) as client:  # the same payload signed with the real key is accepted
        signed = itsdangerous.TimestampSigner("test-secret-not-for-production").sign(payload).decode()
        client.cookies.set("qcflow_session", signed)
        assert client.get("/").status_code == 200


def test_logout_ends_the_session(seeded: Seeded) -> None:
    with make_client(seeded.ws) as client:
        _login(client, USERS[Role.OPERATOR], PASSWORD)
        token = csrf_of(client, "/")
        assert client.post("/logout", data={"csrf_token": token}).status_code == 303
        assert client.get("/").status_code == 303


def test_login_is_throttled_after_five_failures(seeded: Seeded) -> None:
    name = USERS[Role.REVIEWER]
    with make_client(seeded.ws) as client:
        for _ in range(5):
            assert _login(client, name, "guess").status_code == 401
        blocked = _login(client, name, PASSWORD)  # even the right password waits now
        assert blocked.status_code == 429
        assert int(blocked.headers["Retry-After"]) > 0
        # the throttle is per user: another user from the same address still gets in
        assert _login(client, USERS[Role.OPERATOR], PASSWORD).status_code == 303


def test_throttle_forgets_failures_after_the_window() -> None:
    from dashboard.security import LoginThrottle

    now = [1000.0]
    throttle = LoginThrottle(max_failures=2, window_seconds=300, clock=lambda: now[0])
    throttle.record_failure("ann", "10.0.0.1")
    throttle.record_failure("ann", "10.0.0.1")
    assert throttle.retry_after("ann", "10.0.0.1") == 300
    assert throttle.retry_after("ann", "10.0.0.2") == 0
    now[0] += 301
    assert throttle.retry_after("ann", "10.0.0.1") == 0
