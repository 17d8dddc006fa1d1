"""A listmonk double on 127.0.0.1 that behaves as ``shared/protocols/listmonk-api.md`` says.

Real sockets (threaded, HTTP/1.1 keep-alive) in front of real SQL: this module is the HTTP half
(routes, authentication, faults, counters, fixtures); the data, the ``query`` evaluation, list
actions and settings are :class:`~tests.servers.listmonk_store.ListmonkStore`, which
:class:`ListmonkDouble` extends. Reproduced quirks of this half: ``{"data": ...}`` envelopes
and ``{"message": ...}`` errors; 403 for bad credentials and missing permissions (v4+, per API
user; a ``session`` cookie makes the Authorization header ignored) and echo's 401 for v2/v3
BasicAuth; 404 for an unknown route and 405 for a wrong method; routes that appear with the
version that brought them.

For tests: ``fail``/``drop``/``hang``/``stop_after`` inject faults, ``before_request`` runs a hook
(change rows between pages), ``counts`` holds requests per endpoint, ``seed`` adds 100,000
subscribers in about a second. Not modelled: per-list permissions (``list:get``), campaigns,
imports, bounces, subscriber create/delete routes, PostgreSQL-only syntax (``ILIKE``, ``::``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import struct
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from inboxops.config import Secret
from inboxops.listmonk import ListmonkInstance
from tests.servers.listmonk_store import (
    MASK,
    SQL_QUERY,
    ApiUser,
    HttpError,
    ListmonkStore,
    Request,
)

__all__ = [
    "ADMIN_PASSWORD",
    "ADMIN_USER",
    "API_USER",
    "MASK",
    "SQL_QUERY",
    "TOKEN",
    "ApiUser",
    "HttpError",
    "ListmonkDouble",
    "Request",
    "listmonk_server",
    "make_listmonk_server",
]

API_USER = "inboxops"
TOKEN = "lm-test-token-3c9e-never-printed"
ADMIN_USER = "admin"  # v2/v3 BasicAuth
ADMIN_PASSWORD = "lm-admin-pw-never-printed"
INBOXOPS_PERMISSIONS = frozenset(
    {
        "subscribers:get_all",
        "subscribers:manage",
        "lists:get_all",
        SQL_QUERY,
        "settings:get",
        "settings:manage",
    }
)

# method, path template, permission (None: public, "": any authenticated user), since version
ROUTES: tuple[tuple[str, str, str | None, tuple[int, int]], ...] = (
    ("GET", "/health", None, (0, 0)),
    ("GET", "/api/health", "", (0, 0)),
    ("GET", "/api/config", "", (2, 5)),
    ("GET", "/api/lists", "lists:get_all", (0, 0)),
    ("GET", "/api/lists/:id", "lists:get_all", (0, 0)),
    ("GET", "/api/subscribers", "subscribers:get_all", (0, 0)),
    ("PUT", "/api/subscribers/blocklist", "subscribers:manage", (0, 0)),
    ("PUT", "/api/subscribers/query/blocklist", "subscribers:manage", (0, 0)),
    ("PUT", "/api/subscribers/lists", "subscribers:manage", (0, 0)),
    ("PUT", "/api/subscribers/query/lists", "subscribers:manage", (0, 0)),
    ("GET", "/api/subscribers/:id", "subscribers:get_all", (0, 0)),
    ("PUT", "/api/subscribers/:id/blocklist", "subscribers:manage", (0, 0)),
    ("GET", "/api/settings", "settings:get", (0, 0)),
    ("PUT", "/api/settings", "settings:manage", (0, 0)),
    ("PUT", "/api/settings/:key", "settings:manage", (6, 0)),
)


@dataclass
class Fault:
    """A scripted misbehaviour for the next matching request(s); see ListmonkDouble.fail."""

    kind: str  # "status" | "drop" | "reset" | "hang" | "stop"
    status: int = 503
    retry_after: str | None = None
    endpoint: str | None = None  # None: any request
    after: int = 0  # let this many matching requests through first
    times: int = 1
    seconds: float = 0.0  # for "hang"
    message: str = "scripted failure"


class ListmonkDouble(ListmonkStore):
    """One listmonk instance: its own server, database, API users and settings.

    ``version`` picks the behaviour: below v4 BasicAuth with ``admin_user``/``admin_password``
    (both empty: no auth at all); v4+ API users with tokens and permissions; v5+ the
    ``subscribers:sql_query`` permission, the query table allow-list and ``search``; v6+ list
    ``status`` and ``PUT /api/settings/:key``. ``prefix`` serves it under a path (``/listmonk``).
    """

    def __init__(
        self,
        name: str = "main",
        *,
        version: str = "v6.2.0",
        prefix: str = "",
        admin_user: str = ADMIN_USER,
        admin_password: str = ADMIN_PASSWORD,
    ) -> None:
        super().__init__(version)
        self.name = name
        self.prefix = prefix.rstrip("/")
        self.admin = (admin_user, admin_password)
        self.users: dict[str, ApiUser] = {
            API_USER: ApiUser(API_USER, TOKEN, set(INBOXOPS_PERMISSIONS))
        }
        self.session_cookie = False  # answer with Set-Cookie: session=... (a proxy's doing)
        # runs for every request, with the double's lock held, before faults and handling;
        # it may change rows (add_subscriber, seed, delete_subscribers) or req.params
        self.before_request: Callable[[Request], object] | None = None
        self.requests: list[Request] = []
        self.counts: Counter[str] = Counter()
        self._faults: list[Fault] = []
        self._closed = False
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._conns: set[socket.socket] = set()
        self._routes = [
            (method, template, perm, re.compile(_route_regex(template)))
            for method, template, perm, since in ROUTES
            if (self.major, self.minor) >= since
        ]

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}{self.prefix}"

    def start(self) -> None:
        """Serve (again, on the same port after :meth:`stop`)."""
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler(self))
        server.daemon_threads = True
        self._port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Go away: stop listening and cut every open connection (clients get refused)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._released.set()
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.db.interrupt()  # a handler still in a query must not meet a closed connection
        with self.lock:
            self.db.close()

    def instance(self, **overrides: Any) -> ListmonkInstance:
        """A ListmonkInstance for this double: the API user (v4+) or admin (v2/v3) and a 2 s
        timeout; keyword arguments override fields (``token`` may be given as a plain str)."""
        if self.major < 4:
            values: dict[str, Any] = {"user": self.admin[0], "token": self.admin[1]}
            values["auth"] = "basic"
        else:
            values = {"user": API_USER, "token": TOKEN, "auth": "auto"}
        values.update(name=self.name, url=self.url, timeout=2.0)
        values.update(overrides)
        if isinstance(values["token"], str):
            values["token"] = Secret(values["token"])
        return ListmonkInstance(**values)

    # -- API users -----------------------------------------------------------------------------

    def add_user(self, name: str, token: str, permissions: set[str] | None = None) -> ApiUser:
        user = ApiUser(name, token, permissions)
        self.users[name] = user
        return user

    def revoke(self, *permissions: str, user: str = API_USER) -> None:
        perms = self.users[user].permissions
        if perms is not None:
            perms.difference_update(permissions)

    def grant(self, *permissions: str, user: str = API_USER) -> None:
        perms = self.users[user].permissions
        if perms is not None:
            perms.update(permissions)

    # -- faults and counters -------------------------------------------------------------------

    def fail(
        self,
        status: int = 503,
        *,
        after: int = 0,
        times: int = 1,
        retry_after: str | int | None = None,
        endpoint: str | None = None,
        message: str = "scripted failure",
    ) -> None:
        """Answer ``status`` (with ``{"message": message}``) to ``times`` matching requests after
        letting ``after`` through (``after=N-1`` fails the Nth); ``endpoint`` is a route such as
        "GET /api/subscribers". ``retry_after`` sets the Retry-After header."""
        ra = None if retry_after is None else str(retry_after)
        self._faults.append(Fault("status", status, ra, endpoint, after, times, 0.0, message))

    def drop(
        self, *, after: int = 0, times: int = 1, endpoint: str | None = None, reset: bool = False
    ) -> None:
        """Close the connection without an answer (``reset``: with a TCP RST)."""
        self._faults.append(Fault("reset" if reset else "drop", 0, None, endpoint, after, times))

    def hang(self, seconds: float, *, after: int = 0, times: int = 1) -> None:
        """Hold the request ``seconds`` (past a client's timeout), then answer normally."""
        self._faults.append(Fault("hang", 0, None, None, after, times, seconds))

    def stop_after(self, requests: int, *, endpoint: str | None = None) -> None:
        """Let ``requests`` matching requests through, then go away at the next one."""
        self._faults.append(Fault("stop", 0, None, endpoint, requests, 1))

    def count(self, endpoint: str) -> int:
        return self.counts[endpoint]

    def requests_to(self, endpoint: str) -> list[Request]:
        return [r for r in self.requests if r.endpoint == endpoint]

    def _take_fault(self, endpoint: str) -> Fault | None:
        for fault in self._faults:
            if fault.endpoint not in (None, endpoint):
                continue
            if fault.after > 0:
                fault.after -= 1
                continue
            fault.times -= 1
            if fault.times <= 0:
                self._faults.remove(fault)
            return fault
        return None

    # -- HTTP ----------------------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: Any, raw: bytes, conn: socket.socket
    ) -> tuple[int, Any, dict[str, str]] | None:
        """Answer one request: (status, JSON payload or HTML text, headers); None drops it."""
        parts = urlsplit(target)
        path = parts.path
        if self.prefix and not (path == self.prefix or path.startswith(self.prefix + "/")):
            return 404, "<html><body><h1>404 Not Found</h1>nginx</body></html>", {}
        path = path[len(self.prefix) :]
        route, args, allowed = self._route(method, path)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = ValueError
        scheme = str(headers.get("Authorization") or "").split(" ")[0].lower()
        endpoint = f"{method} {route[1]}" if route else f"{method} {path}"
        params = parse_qs(parts.query, keep_blank_values=True)
        record = Request(method, path, endpoint, params, body, scheme)
        with self.lock:
            if self._closed:
                return None
            self.requests.append(record)
            self.counts[endpoint] += 1
            if self.before_request is not None:
                self.before_request(record)
            fault = self._take_fault(endpoint)
            if self._reload_left > 0 and fault is None:
                self._reload_left -= 1
                fault = Fault("drop")
        if fault is not None and fault.kind == "hang":
            self._released.wait(fault.seconds)
        elif fault is not None and fault.kind in ("drop", "reset", "stop"):
            if fault.kind == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if fault.kind == "stop":
                self.stop()
            return None
        elif fault is not None:
            retry = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            record.status = fault.status
            return fault.status, {"message": fault.message}, retry
        with self.lock:
            if self._closed:
                return None
            try:
                if route is None:
                    if allowed:
                        raise HttpError(405, "Method Not Allowed")
                    raise HttpError(404, "404 unknown endpoint")
                if body is ValueError:
                    raise HttpError(400, "invalid JSON body")
                user = self._authenticate(route[2], headers)
                handler = getattr(self, "_h_" + _handler_name(method, route[1]))
                status, payload = 200, {"data": handler(record, user, **args)}
                extra: dict[str, str] = {}
            except HttpError as exc:
                status, payload, extra = exc.status, {"message": exc.message}, exc.headers
        if self.session_cookie:
            extra["Set-Cookie"] = f"session={uuid.uuid4().hex}; Path=/; HttpOnly"
        record.status = status
        return status, payload, extra

    def _route(
        self, method: str, path: str
    ) -> tuple[tuple[str, str, str | None] | None, dict[str, str], bool]:
        allowed = False
        for route_method, template, perm, regex in self._routes:
            match = regex.fullmatch(path)
            if match:
                if route_method == method:
                    return (route_method, template, perm), match.groupdict(), True
                allowed = True
        return None, {}, allowed

    def _authenticate(self, permission: str | None, headers: Any) -> ApiUser | None:
        """None for the v2/v3 admin (or a public route); raises 401/403 like listmonk."""
        if permission is None:
            return None
        header = str(headers.get("Authorization") or "")
        scheme, _, value = header.partition(" ")
        if self.major < 4:
            if not any(self.admin):
                return None
            expected = base64.b64encode(":".join(self.admin).encode()).decode()
            if scheme.lower() != "basic" or value.strip() != expected:
                raise HttpError(
                    401, "Unauthorized", {"WWW-Authenticate": 'basic realm="Restricted"'}
                )
            return None
        if "session=" in str(headers.get("Cookie") or "") or not header:
            raise HttpError(403, "invalid session")  # a session cookie wins over the header
        if scheme.lower() == "basic":
            try:
                value = base64.b64decode(value.strip(), validate=True).decode()
            except ValueError:
                raise HttpError(403, "invalid API credentials") from None
        elif scheme.lower() != "token":
            raise HttpError(403, "unknown Authorization scheme")
        name, sep, token = value.strip().partition(":")
        if not sep:
            raise HttpError(403, "api_key:token missing")
        if not name or not token:
            raise HttpError(403, "empty `api_key` or `token`")
        user = self.users.get(name)
        if user is None or user.token != token:
            raise HttpError(403, "invalid API credentials")
        if permission and not user.can(permission):
            raise HttpError(403, f"permission denied: {permission}")
        return user


def _route_regex(template: str) -> str:
    return re.sub(r":(\w+)", r"(?P<\1>[^/]+)", template)


def _handler_name(method: str, template: str) -> str:
    return (method + template).lower().replace("/", "_").replace(":", "").replace(".", "_")


def _handler(double: ListmonkDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httpx's pool would meet in production
        timeout = 10

        def log_message(self, format: str, *args: Any) -> None:
            return

        def setup(self) -> None:
            super().setup()
            double._conns.add(self.connection)

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                double._conns.discard(self.connection)

        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            reply = double.handle(self.command, self.path, self.headers, raw, self.connection)
            if reply is None:
                self.close_connection = True
                return
            status, payload, headers = reply
            html = isinstance(payload, str)
            data = payload.encode() if html else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if html else "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client timed out and left

        do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve

    return Handler


@pytest.fixture
def make_listmonk_server() -> Iterator[Callable[..., ListmonkDouble]]:
    """Start doubles: ``make_listmonk_server(name="main", version="v6.2.0", prefix="")``; each
    has its own port, database and users, and is stopped after the test."""
    started: list[ListmonkDouble] = []

    def make(name: str = "main", **kwargs: Any) -> ListmonkDouble:
        double = ListmonkDouble(name, **kwargs)
        double.start()
        started.append(double)
        return double

    yield make
    for double in started:
        double.close()


@pytest.fixture
def listmonk_server(make_listmonk_server: Callable[..., ListmonkDouble]) -> ListmonkDouble:
    """A fresh listmonk v6.2.0 double ("main"), API user ``inboxops`` with inboxops' permissions."""
    return make_listmonk_server()
