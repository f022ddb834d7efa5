"""Standard Webhooks signatures (https://www.standardwebhooks.com): the headers that let a receiver check a body.

A secret is written `whsec_<base64>` (the Standard Webhooks form) or as bare base64, as the reference library
reads it: the HMAC key is the base64-decoded part either way. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"


class SigningKeyError(ValueError):
    """A webhook secret is not valid base64 (or is empty): fix the secret in the configuration."""


def signing_key(secret: str) -> bytes:
    """The HMAC key of a webhook secret: the base64 after an optional `whsec_` prefix, decoded."""
    encoded = secret.removeprefix(SECRET_PREFIX).rstrip("=")
    try:
        # Padding is optional, as in the reference library.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise SigningKeyError("a webhook secret must be base64 after the optional whsec_ prefix") from None
    if not key:
        raise SigningKeyError("a webhook secret must not be empty")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` + base64 of HMAC-SHA256 over `id.timestamp.body`."""
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def webhook_headers(msg_id: str, timestamp: int, body: bytes, key: bytes | None) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` (whole Unix seconds) and, when there is a key, `webhook-signature`."""
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if key is not None:
        headers["webhook-signature"] = sign(key, msg_id, timestamp, body)
    return headers
