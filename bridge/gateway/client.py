"""Async client of the SmsGateway24 API: one method per call, token handling and typed errors.

Every call is a POST with a form body, so a `+` in a number survives (a bare `+` in a query string
would reach the upstream as a space). The upstream reports errors as HTTP 200 with `error: 1`;
the client turns them into `ApiError`, and into one token renewal and one retry when it logs in
with email and password.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, tzinfo
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp

from bridge.gateway import parse
from bridge.gateway.errors import (
    ApiError,
    AuthError,
    GatewayError,
    MalformedResponse,
    UpstreamUnavailable,
)
from bridge.gateway.models import Device, OutgoingSms, Sms, SmsListing, SmsStatusInfo, Status

__all__ = [
    "ApiError",
    "AuthError",
    "GatewayClient",
    "GatewayError",
    "MalformedResponse",
    "UpstreamUnavailable",
]

log = logging.getLogger(__name__)

# The upstream words credential failures in several ways ("Login or password incorrect", token errors).
_AUTH_WORDS = re.compile(r"token|login|passw|auth|credential", re.IGNORECASE)
_RETRY_LATER_HTTP = frozenset({408, 425, 429})

Form = dict[str, str]


class _Revealable(Protocol):
    def reveal(self) -> str: ...


def _reveal(value: str | _Revealable | None) -> str | None:
    """The plain text of a secret given as a str or as an object with `.reveal()`."""
    if value is None or isinstance(value, str):
        return value
    return value.reveal()


def looks_like_auth_error(message: str) -> bool:
    """True when an upstream error message is about credentials or the token."""
    return _AUTH_WORDS.search(message) is not None


class GatewayClient:
    """The SmsGateway24 API over one aiohttp session (the caller owns and closes the session).

    Authenticates with `email` + `password` (a token is fetched with gettoken, cached and renewed
    once when a call is refused) or with a fixed `token`. `account_tz` is the account's zone:
    request dates are written in it and plain date strings in answers are read in it.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        email: str | None = None,
        password: str | _Revealable | None = None,
        token: str | _Revealable | None = None,
        account_tz: str = "Europe/Paris",
        timeout: float = 30,
    ) -> None:
        if token is None and not (email and password is not None):
            raise ValueError("the gateway client needs an email and a password, or a token")
        self._session = session
        self._base = base_url.rstrip("/") + "/getdata/"
        self._email = email
        self._password = password
        self._fixed_token = token
        self._zone = _zone(account_tz)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._token: str | None = _reveal(token)
        self._generation = 0
        self._attempts = 0
        self._failure: GatewayError | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        auth = "email/password" if self._can_login else "fixed token"
        return f"GatewayClient({self._base!r}, auth={auth})"

    @property
    def account_tz(self) -> tzinfo:
        """The account's zone."""
        return self._zone

    @property
    def _can_login(self) -> bool:
        return bool(self._email) and self._password is not None

    # --- the API ----------------------------------------------------------------------------

    async def get_token(self) -> None:
        """Fetch a new token with the email and password (this checks them); later calls use it."""
        await self._token_after(self._generation)

    async def add_sms(self, sms: OutgoingSms) -> int:
        """Create one outgoing SMS with addsms; returns its id."""
        data = await self._call("addsms", _with_token(self._sms_fields(sms)))
        return parse.parse_sms_id(data)

    async def sms_to_send(self, sms: OutgoingSms) -> int:
        """Create one outgoing SMS with smstosend (email and password, no token); returns its id."""
        if not self._can_login:
            raise AuthError("smstosend needs the account's email and password, and only a token is configured")
        form = {"email": self._email or "", "pass": _reveal(self._password) or "", **self._sms_fields(sms)}
        data = await self._post("smstosend", form)
        try:
            parse.raise_for_error(data)
        except ApiError as refused:
            if looks_like_auth_error(refused.message):
                raise AuthError(f"the gateway refused the email and password: {refused.message}") from None
            raise
        return parse.parse_sms_id(data)

    async def add_many_sms(self, messages: Iterable[OutgoingSms]) -> None:
        """Create many outgoing SMS in one addalotofsms call (the upstream returns no ids)."""
        items = [self._batch_item(sms) for sms in messages]
        if not items:
            return

        def form(token: str) -> Form:
            return {"datajson": json.dumps({"token": token, "smsdata": items}, ensure_ascii=False)}

        parse.parse_ok(await self._call("addalotofsms", form))

    async def get_all_sms(self, **filters: Any) -> list[Sms]:
        """The readable messages `list_sms` gives with the same filters."""
        return list((await self.list_sms(**filters)).messages)

    async def list_sms(
        self,
        *,
        device_id: int | None = None,
        status: Status | int | None = None,
        begin: datetime | None = None,
        end: datetime | None = None,
        sim: int | None = None,
        customer_id: int | None = None,
        phone: str | None = None,
        order_by_desc: bool = False,
        timezone: str | None = None,
    ) -> SmsListing:
        """Messages of the account (incoming ones have status 5), filtered as given, and the rows of the
        answer that could not be read.

        `begin`/`end` are sent in the account's zone, or in `timezone` when given (the upstream
        then also answers in that zone); a naive datetime is taken as already in that zone.
        """
        zone = self._zone if timezone is None else _zone(timezone)
        fields = self._filters(device_id, status, begin, end, sim, customer_id, phone, timezone, zone)
        if order_by_desc:
            fields["orderbydesc"] = "1"
        data = await self._call("getallsms", _with_token(fields))
        return parse.read_sms_list(data, zone)

    async def count_sms(
        self,
        *,
        device_id: int | None = None,
        status: Status | int | None = None,
        begin: datetime | None = None,
        end: datetime | None = None,
        sim: int | None = None,
        customer_id: int | None = None,
        phone: str | None = None,
        timezone: str | None = None,
    ) -> int:
        """How many messages `get_all_sms` would return with the same filters (onlycount)."""
        zone = self._zone if timezone is None else _zone(timezone)
        fields = self._filters(device_id, status, begin, end, sim, customer_id, phone, timezone, zone)
        fields["onlycount"] = "1"
        return parse.parse_count(await self._call("getallsms", _with_token(fields)))

    async def save_tag(self, title: str) -> int:
        """Create a tag (a contact list) with savetag; returns its id."""
        return parse.parse_tag_id(await self._call("savetag", _with_token({"title": title})))

    async def save_contact(self, phone: str, tag_id: int, fullname: str) -> int:
        """Add a contact to a tag with savecontact; returns the contact's id."""
        fields = {"phone": phone, "ctag_id": str(tag_id), "fullname": fullname}
        return parse.parse_contact_id(await self._call("savecontact", _with_token(fields)))

    async def save_paket(
        self,
        title: str,
        device_id: int,
        body: str,
        tag_ids: Iterable[int],
        sim: int = 0,
        time_to_send: datetime | None = None,
    ) -> int | None:
        """Create a newsletter to the contacts of `tag_ids` with savepaket; its id when the upstream gives one."""
        fields = {
            "title": title,
            "device_id": str(device_id),
            "body": body,
            "tags": ",".join(str(tag) for tag in tag_ids),
            "sim": str(sim),
            "time_to_send": "0" if time_to_send is None else parse.format_paket_time(time_to_send, self._zone),
        }
        return parse.parse_paket_id(await self._call("savepaket", _with_token(fields)))

    async def get_all_devices(self) -> list[Device]:
        """The account's phones with their SIM cards and last-seen times."""
        return parse.parse_devices(await self._call("getalldevices", _with_token({})), self._zone)

    async def get_sms_status(self, sms_id: int) -> SmsStatusInfo:
        """The status of one SMS."""
        data = await self._call("getsmsstatus", _with_token({"sms_id": str(sms_id)}))
        return parse.parse_sms_status(data, sms_id)

    # --- request fields -----------------------------------------------------------------------

    def _sms_fields(self, sms: OutgoingSms) -> Form:
        fields = {"sendto": sms.to, "body": sms.body, "device_id": str(sms.device_id), "sim": str(sms.sim)}
        if sms.time_to_send is not None:
            fields["timetosend"] = parse.format_time(sms.time_to_send, self._zone)
        if sms.customer_id is not None:
            fields["customerid"] = str(sms.customer_id)
        if sms.urgent:
            fields["urgent"] = "1"
        return fields

    def _batch_item(self, sms: OutgoingSms) -> dict[str, Any]:
        item: dict[str, Any] = {"sendto": sms.to, "body": sms.body, "sim": sms.sim}
        if sms.time_to_send is not None:
            item["timetosend"] = parse.format_time(sms.time_to_send, self._zone)
        item["device_id"] = sms.device_id
        if sms.customer_id is not None:
            item["customerid"] = sms.customer_id
        item["urgent"] = int(sms.urgent)
        return item

    @staticmethod
    def _filters(
        device_id: int | None,
        status: Status | int | None,
        begin: datetime | None,
        end: datetime | None,
        sim: int | None,
        customer_id: int | None,
        phone: str | None,
        timezone: str | None,
        zone: tzinfo,
    ) -> Form:
        given = {
            "device_id": device_id,
            "status": None if status is None else int(status),
            "begindate": None if begin is None else parse.format_time(begin, zone),
            "enddate": None if end is None else parse.format_time(end, zone),
            "sim": sim,
            "customerid": customer_id,
            "phone": phone,
            "timezone": timezone,
        }
        return {key: str(value) for key, value in given.items() if value is not None}

    # --- tokens -------------------------------------------------------------------------------

    async def _call(self, method: str, form: Callable[[str], Form]) -> dict[str, Any]:
        """POST a token method; when refused, renew the token once and retry once."""
        generation, token = await self._token_after(None)
        data = await self._post(method, form(token))
        try:
            return parse.raise_for_error(data)
        except ApiError as refused:
            if not self._can_login:
                raise _token_refused(refused) from None
        _, token = await self._token_after(generation)
        data = await self._post(method, form(token))
        try:
            return parse.raise_for_error(data)
        except ApiError as refused:
            if looks_like_auth_error(refused.message):
                raise AuthError(f"the gateway refused a freshly issued token: {refused.message}") from None
            raise

    async def _token_after(self, stale: int | None) -> tuple[int, str]:
        """The current token, or a new one when there is none or the current one is `stale`.

        Single flight: callers that queued behind a renewal share its token, or its failure.
        """
        if self._token is not None and self._generation != stale:
            return self._generation, self._token
        attempts = self._attempts
        async with self._lock:
            if self._token is not None and self._generation != stale:
                return self._generation, self._token
            if self._attempts != attempts and self._failure is not None:
                raise self._failure
            self._attempts += 1
            try:
                self._token = await self._fetch_token()
            except GatewayError as exc:
                self._failure = exc
                raise
            self._failure = None
            self._generation += 1
            return self._generation, self._token

    async def _fetch_token(self) -> str:
        if not self._can_login:
            raise AuthError("the gateway needs a new token but no email and password are configured")
        form = {"email": self._email or "", "pass": _reveal(self._password) or ""}
        data = await self._post("gettoken", form)
        try:
            token = parse.parse_token(data)
        except ApiError as refused:
            raise AuthError(f"the gateway refused the email and password: {refused.message}") from None
        log.info("gateway: new token issued")
        return token

    # --- HTTP ---------------------------------------------------------------------------------

    async def _post(self, method: str, form: Form) -> dict[str, Any]:
        """POST a form to one method and decode the JSON object it answers (not yet checked for `error`)."""
        started = time.monotonic()
        try:
            async with self._session.post(
                self._base + method, data=form, timeout=self._timeout, allow_redirects=False
            ) as response:
                raw = await response.read()
                status = response.status
                location = response.headers.get("Location")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.InvalidURL) as exc:
            raise UpstreamUnavailable(f"{method}: cannot connect to the gateway: {exc}", maybe_applied=False) from None
        except TimeoutError:
            raise UpstreamUnavailable(
                f"{method}: the gateway did not answer within {self._timeout.total:g}s"
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"{method}: {type(exc).__name__}: {exc}") from None
        log.debug("gateway %s: HTTP %d in %.0f ms", method, status, 1000 * (time.monotonic() - started))
        _check_http(method, status, location)
        try:
            return parse.decode(raw)
        except MalformedResponse as exc:
            raise MalformedResponse(f"{method}: {exc.message}") from None


def _with_token(fields: Mapping[str, str]) -> Callable[[str], Form]:
    """The form of a token method: its fields plus the token."""
    return lambda token: {"token": token, **fields}


def _token_refused(refused: ApiError) -> GatewayError:
    """What a refusal means when the token is fixed and cannot be renewed."""
    if looks_like_auth_error(refused.message):
        return AuthError(f"the gateway refused the configured token: {refused.message}")
    return refused


def _check_http(method: str, status: int, location: str | None) -> None:
    """Raise for HTTP statuses that carry no API answer."""
    if status < 300:
        return
    if status < 400:
        raise ApiError(f"{method}: the gateway redirected (HTTP {status}) to {location or 'elsewhere'}; "
                       "use the final address as the gateway URL")
    if status >= 500 or status in _RETRY_LATER_HTTP:
        raise UpstreamUnavailable(f"{method}: the gateway answered HTTP {status}", answered=True)
    raise ApiError(f"{method}: the gateway answered HTTP {status}")


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
