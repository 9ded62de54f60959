"""Sessions, CSRF tokens and login throttling (password hashing lives in ``pipeline.users``)."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, MutableMapping
from typing import Any

SESSION_USER = "user"
SESSION_CSRF = "csrf"


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token, created on first use (one per session, rotated at login)."""
    token = session.get(SESSION_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[SESSION_CSRF] = token
    return token


def csrf_matches(session: MutableMapping[str, Any], submitted: str | None) -> bool:
    expected = session.get(SESSION_CSRF)
    if not isinstance(expected, str) or not submitted:
        return False
    return hmac.compare_digest(expected, submitted)


def start_session(session: MutableMapping[str, Any], user_name: str) -> None:
    """A fresh session for a logged-in user: old contents (and CSRF token) dropped against fixation."""
    session.clear()
    session[SESSION_USER] = user_name
    csrf_token(session)


class LoginThrottle:
    """Refuses logins after ``max_failures`` failures per (user, client address) within ``window_seconds``.

    Kept in memory: the dashboard runs as one process, and a restart forgetting
    the count is acceptable for slowing guessing down.
    """

    def __init__(
        self, max_failures: int, window_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self._clock = clock
        self._failures: defaultdict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        failures = self._failures[key]
        horizon = self._clock() - self.window_seconds
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures

    def retry_after(self, user_name: str, client: str) -> float:
        """Seconds until a login may be tried again; 0 when it may be tried now."""
        with self._lock:
            failures = self._recent((user_name, client))
            if len(failures) < self.max_failures:
                return 0.0
            return max(failures[0] + self.window_seconds - self._clock(), 1.0)

    def record_failure(self, user_name: str, client: str) -> None:
        with self._lock:
            self._recent((user_name, client)).append(self._clock())

    def reset(self, user_name: str, client: str) -> None:
        with self._lock:
            self._failures.pop((user_name, client), None)
