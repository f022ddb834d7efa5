"""Errors of the SmsGateway24 client; each type says what the caller should do."""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway client raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthError(GatewayError):
    """The credentials or the token were refused: fix the configuration, retrying will not help."""


class ApiError(GatewayError):
    """The upstream refused the request (`error: 1`): it was not applied; do not retry it as is."""


class UpstreamUnavailable(GatewayError):
    """The upstream could not be reached or answered garbage: retry later.

    `maybe_applied` is False only when the request surely never reached the server (connection
    refused, name not resolved); otherwise a send may have happened and must be reconciled first.
    `answered` is True when the server did answer (an HTTP 5xx, a body that is not JSON): it has finished
    with the request, so what it applied can be looked up at once. Without an answer (a timeout) it may
    still be working on it.
    """

    def __init__(self, message: str, maybe_applied: bool = True, answered: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied
        self.answered = answered


class MalformedResponse(UpstreamUnavailable):
    """The upstream answered HTTP 200 with a body the client cannot read (the request may have applied)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, maybe_applied=True, answered=True)
