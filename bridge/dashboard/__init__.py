"""The web dashboard under `/ui/` (DESIGN section 10): server-rendered pages over the store, a few actions.

Security, where the contract leaves room:
- Sign-in takes any of `server.api_keys`; the session is a signed cookie (see `auth`), HttpOnly,
  SameSite=Strict, Secure when `server.public_url` is https. Sign-in attempts are limited per client address.
- Every POST carries the session's CSRF token (field `csrf_token`); one without it is refused with 403.
- Pages are Jinja templates with autoescaping on: SMS text and every other value shows as text. No inline
  script or style, so the Content-Security-Policy allows only this origin's files.
- No secret is rendered: API keys, webhook secrets and headers never reach a template, and webhook URLs show
  only their scheme and host (their paths often carry a token).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from bridge.appkeys import CONFIG
from bridge.config import Rate
from bridge.dashboard import auth, live, pages
from bridge.dashboard.render import Renderer
from bridge.server import RateLimiter
from bridge.store import StoreRejected

STATIC_DIR = Path(__file__).parent / "static"
SIGN_IN_RATE = Rate(10, 60.0)  # attempts per client address
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_OPEN_PATHS = ("/ui/login", "/ui/static/")


def setup_dashboard(app: web.Application) -> None:
    """Serve the dashboard from `app` (app[CONFIG] must be set; the store and workers are read per request)."""
    config = app[CONFIG]
    app[pages.RENDERER] = Renderer(config.gateway.timezone)
    app[pages.KEYS] = tuple(key.reveal().encode() for key in config.server.api_keys)
    app[pages.SIGN_IN_LIMITER] = RateLimiter(SIGN_IN_RATE)
    app[pages.SECURE_COOKIE] = (config.server.public_url or "").lower().startswith("https://")
    app.middlewares.append(_guard)
    live.setup_live(app)
    router = app.router
    router.add_get("/ui", pages.to_overview)
    router.add_get("/ui/login", pages.login_form)
    router.add_post("/ui/login", pages.login)
    router.add_post("/ui/logout", pages.logout)
    router.add_get("/ui/", pages.overview)
    router.add_get("/ui/messages", pages.messages)
    router.add_get("/ui/messages/{id}", pages.message)
    router.add_get("/ui/threads/{number}", pages.thread)
    router.add_get("/ui/deliveries", pages.deliveries)
    router.add_post("/ui/deliveries/{id}/replay", pages.replay_one)
    router.add_post("/ui/targets/{name}/replay", pages.replay_target)
    router.add_post("/ui/targets/{name}/enable", pages.enable_target)
    router.add_get("/ui/sends", pages.sends)
    router.add_get("/ui/devices", pages.devices)
    router.add_get("/ui/opt-outs", pages.opt_outs)
    router.add_post("/ui/opt-outs", pages.change_opt_out)
    router.add_get("/ui/rules", pages.rules_form)
    router.add_post("/ui/rules", pages.rules_dry_run)
    router.add_get("/ui/live", live.stream)
    router.add_static("/ui/static/", STATIC_DIR)


@web.middleware
async def _guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                 ) -> web.StreamResponse:
    """Under /ui: a session for every page but sign-in, a valid CSRF token on every POST, safe headers."""
    if not request.path.startswith("/ui"):
        return await handler(request)
    response = await _checked(request, handler)
    if response.prepared:  # a stream: its headers are sent
        return response
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if not request.path.startswith("/ui/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


async def _checked(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                   ) -> web.StreamResponse:
    if request.path.startswith(_OPEN_PATHS):
        return await handler(request)
    session = auth.session_of(request.cookies.get(auth.SESSION_COOKIE), request.app[pages.KEYS], time.time())
    if session is None:
        if request.method == "GET" and request.path != "/ui/live":
            raise web.HTTPFound("/ui/login")
        return pages.refusal(request, 403, "Sign in first.")
    if request.method == "POST":
        form = await request.post()
        token = form.get(auth.CSRF_FIELD)
        if not session.accepts(token if isinstance(token, str) else None):
            return pages.refusal(request, 403, "This form has expired or did not come from this dashboard.")
    request[pages.SESSION] = session
    try:
        return await handler(request)
    except StoreRejected:
        return pages.refusal(request, 400, "A value in this request cannot be stored or looked up (a NUL "
                                           "character, or a number past 64 bits); nothing was changed.")
