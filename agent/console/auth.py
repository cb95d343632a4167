"""Who may see the console: the same people as ``/api``.

With ``SLOTLINE_API_TOKEN`` set, ``/login`` takes the token once and answers with a session
cookie: an expiry and an HMAC of it keyed by the token — never the token itself, so a leaked
cookie dies with its expiry and every cookie dies when the token changes. Without a token the
console follows the API's loopback rule (``agent.server.app._check_api_auth``, reused, not copied).

A browser cannot send a bearer header on a link or a form, so requests to ``/api/*`` that carry
a valid session cookie (and, for anything but GET/HEAD, the console's own header, which a
cross-site form cannot set) are handed to the API with the bearer token added: the API keeps
one auth check.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web
from multidict import CIMultiDict

from slotline.agent.server.app import CONTEXT, _check_api_auth

COOKIE = "slotline_console"
SESSION_TTL_S = 12 * 3600  # a working day; then the operator logs in again
# set by console.js on its POSTs; a cross-site form cannot set a header (CSRF)
CONSOLE_HEADER = "X-Slotline-Console"
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_KEY_LABEL = b"slotline-console-session-v1"


def _api_token(request: web.Request) -> str | None:
    token = request.app[CONTEXT].secrets.slotline_api_token
    return token.get_secret_value() if token is not None else None


def _signature(token: str, expires_at_s: int) -> str:
    # keyed by a label-derived key, so the cookie's MAC is never usable as anything else
    key = hmac.new(token.encode(), _KEY_LABEL, hashlib.sha256).digest()
    return hmac.new(key, str(expires_at_s).encode(), hashlib.sha256).hexdigest()


def session_cookie(token: str, now_s: float, ttl_s: int = SESSION_TTL_S) -> str:
    """``EXPIRES.MAC`` for a session that ends ``ttl_s`` after ``now_s``."""
    expires_at_s = int(now_s) + ttl_s
    return f"{expires_at_s}.{_signature(token, expires_at_s)}"


def cookie_valid(token: str, cookie: str, now_s: float) -> bool:
    expires, _, mac = cookie.partition(".")
    if not expires.isdigit() or len(expires) > 12:
        return False
    expires_at_s = int(expires)
    if expires_at_s <= now_s:
        return False
    return hmac.compare_digest(mac.encode(), _signature(token, expires_at_s).encode())


def signed_in(request: web.Request) -> bool:
    """True when the request may see the console (raises 401 off loopback without a token)."""
    token = _api_token(request)
    if token is None:
        _check_api_auth(request)
        return True
    return cookie_valid(token, request.cookies.get(COOKIE, ""), time.time())


def require_page(request: web.Request) -> None:
    """A page: send a visitor who is not signed in to the login page."""
    if not signed_in(request):
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")


def require_data(request: web.Request) -> None:
    """A data endpoint (events, JSON): 401, a script has no use for a login page."""
    if not signed_in(request):
        raise web.HTTPUnauthorized(text="sign in to the console first")


def _local_path(target: str) -> str:
    """Only a path on this server (never ``//evil.example`` or a scheme) as a redirect target."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


async def login_page(request: web.Request) -> web.Response:
    from slotline.agent.console.layout import SECURITY_HEADERS, login_html

    if _api_token(request) is None:
        raise web.HTTPSeeOther("/")
    return web.Response(text=login_html(_local_path(request.query.get("next", "/")), ""),
                        content_type="text/html", headers=SECURITY_HEADERS)


async def login_submit(request: web.Request) -> web.Response:
    from slotline.agent.console.layout import SECURITY_HEADERS, login_html

    token = _api_token(request)
    if token is None:
        raise web.HTTPSeeOther("/")
    form = await request.post()
    given = str(form.get("token", ""))
    target = _local_path(str(form.get("next", "/")))
    if not hmac.compare_digest(given.encode(), token.encode()):
        return web.Response(text=login_html(target, "That token is not right."), status=401,
                            content_type="text/html", headers=SECURITY_HEADERS)
    response = web.HTTPSeeOther(target)
    response.set_cookie(COOKIE, session_cookie(token, time.time()), max_age=SESSION_TTL_S,
                        path="/", httponly=True, samesite="Strict", secure=request.secure)
    raise response


async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/login" if _api_token(request) is not None else "/")
    response.del_cookie(COOKIE, path="/")
    raise response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def api_with_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Lets the console's session reach ``/api/*`` (results CSV, recordings, pause/resume)."""
    if not request.path.startswith("/api/") or "Authorization" in request.headers:
        return await handler(request)
    token = _api_token(request)
    cookie = request.cookies.get(COOKIE)
    if token is None or cookie is None or not cookie_valid(token, cookie, time.time()):
        return await handler(request)
    if request.method not in _SAFE_METHODS and request.headers.get(CONSOLE_HEADER) != "1":
        return await handler(request)
    headers = CIMultiDict(request.headers)
    headers["Authorization"] = f"Bearer {token}"
    return await handler(request.clone(headers=headers))
