"""Sign-in sessions and CSRF tokens of the dashboard (pure: no I/O, the caller passes the time).

A session is a signed cookie, `NONCE.EXPIRY.MAC`, the MAC an HMAC keyed by the API key that signed in. No
session table: every replica with the same `server.api_keys` accepts it, and removing a key from the config
ends the sessions it opened. The CSRF token of a session is another HMAC of its nonce under that key; the
sign-in form, before any session exists, carries a random token that must equal its own cookie's.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

SESSION_COOKIE = "bridge_session"
LOGIN_COOKIE = "bridge_login"
CSRF_FIELD = "csrf_token"
SESSION_LIFETIME = 12 * 3600.0


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: its nonce, when it ends, and the key that signed it (never shown)."""

    nonce: str
    expires: int
    key: bytes

    @property
    def csrf_token(self) -> str:
        """The token every form of this session carries."""
        return _mac(self.key, f"csrf|{self.nonce}")

    def cookie(self) -> str:
        """The cookie value that brings this session back."""
        return f"{self.nonce}.{self.expires}.{_mac(self.key, _signed(self.nonce, self.expires))}"

    def accepts(self, token: str | None) -> bool:
        """True when `token` is this session's CSRF token."""
        return token is not None and hmac.compare_digest(token.encode(), self.csrf_token.encode())


def open_session(key: bytes, now: float) -> Session:
    """A new session for a browser that gave `key`."""
    return Session(secrets.token_urlsafe(18), int(now + SESSION_LIFETIME), key)


def session_of(cookie: str | None, keys: Sequence[bytes], now: float) -> Session | None:
    """The live session a cookie carries, or None (absent, malformed, expired, or signed by no current key)."""
    if not cookie or cookie.count(".") != 2:
        return None
    nonce, expires_text, mac = cookie.split(".")
    if not expires_text.isdigit() or int(expires_text) <= now:
        return None
    expires = int(expires_text)
    found = None
    for key in keys:  # no early exit: the time taken does not tell which key signed
        if hmac.compare_digest(mac.encode(), _mac(key, _signed(nonce, expires)).encode()):
            found = key
    return Session(nonce, expires, found) if found is not None else None


def key_matches(given: str, keys: Sequence[bytes]) -> bytes | None:
    """The configured key equal to `given`, or None; compared in constant time against every key."""
    found = None
    for key in keys:
        if hmac.compare_digest(key, given.encode()):
            found = key
    return found


def login_token() -> str:
    """A random token for the sign-in form and its cookie."""
    return secrets.token_urlsafe(24)


def login_token_ok(cookie: str | None, field: str | None) -> bool:
    """True when the sign-in form's token equals its cookie's."""
    return bool(cookie) and field is not None and hmac.compare_digest(cookie.encode(), field.encode())


def _signed(nonce: str, expires: int) -> str:
    return f"session|{nonce}|{expires}"


def _mac(key: bytes, message: str) -> str:
    return hmac.new(hashlib.sha256(b"sms-bridge dashboard|" + key).digest(), message.encode(),
                    hashlib.sha256).hexdigest()
