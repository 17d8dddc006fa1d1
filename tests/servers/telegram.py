"""A Telegram Bot API double on 127.0.0.1 that speaks sendMessage as documented.

Real sockets, so the client's timeouts, retries and token handling are exercised for real. It
checks the token in the path, answers with Telegram's envelopes, records every request as it
arrives, and can be scripted to answer the next requests with a failure (400 chat not found or
migrate, 401, 403, 429 with ``retry_after``, 500) or to hang past the client's timeout. Also a
plain JSON webhook receiver, so apprise's ``json://`` channel is tested over a real socket.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from inboxops.config import Secret, TelegramSettings

TOKEN = "123456:TEST-token-never-printed"
CHAT_ID = "-100777"
MIGRATED_CHAT_ID = -1001234567890

# scripted failures: kind -> (HTTP status, error body without "ok"/"error_code")
ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "chat_not_found": (400, {"description": "Bad Request: chat not found"}),
    "migrate": (
        400,
        {
            "description": "Bad Request: group chat was upgraded to a supergroup chat",
            "parameters": {"migrate_to_chat_id": MIGRATED_CHAT_ID},
        },
    ),
    "unauthorized": (401, {"description": "Unauthorized"}),
    "blocked": (403, {"description": "Forbidden: bot was blocked by the user"}),
    "not_member": (403, {"description": "Forbidden: bot is not a member of the supergroup chat"}),
    "server_error": (500, {"description": "Internal Server Error"}),
    "bad_gateway": (502, {"description": "Bad Gateway"}),
}
KINDS = (*ERRORS, "rate_limited", "hang", "ok")  # "ok" lets a script succeed before failing


@dataclass
class TelegramDouble:
    """State of one double: what it received and what it will answer next."""

    url: str
    token: str = TOKEN
    requests: list[dict[str, Any]] = field(default_factory=list)  # path, body, status
    script: list[str] = field(default_factory=list)  # failures for the next requests, in order
    retry_after: int = 3  # what "rate_limited" asks the client to wait
    hang_seconds: float = 3.0  # how long "hang" holds a request (released early at teardown)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)

    @property
    def messages(self) -> list[str]:
        """Texts of the messages accepted (answered 200), in arrival order."""
        with self._lock:
            return [str(r["body"].get("text", "")) for r in self.requests if r["status"] == 200]

    def fail_next(self, *kinds: str, times: int = 1) -> None:
        """Answer the next requests with these failures (each ``times`` times), then succeed."""
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown failure kind(s) {sorted(unknown)}; known: {KINDS}")
        with self._lock:
            self.script.extend(kind for kind in kinds for _ in range(times))

    def settings(self, **overrides: Any) -> TelegramSettings:
        """TelegramSettings pointing at this double; keyword arguments override fields."""
        values: dict[str, Any] = {
            "bot_token": Secret(self.token),
            "chat_id": CHAT_ID,
            "api_url": self.url,
            "timeout": 1.0,
        }
        values.update(overrides)
        return TelegramSettings(**values)

    def env(self) -> dict[str, str]:
        """The INBOXOPS_TELEGRAM_* variables a CLI run needs to reach this double."""
        return {
            "INBOXOPS_TELEGRAM_BOT_TOKEN": self.token,
            "INBOXOPS_TELEGRAM_CHAT_ID": CHAT_ID,
            "INBOXOPS_TELEGRAM_API_URL": self.url,
        }

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Record the request, then decide the reply exactly as the scripted Telegram would."""
        with self._lock:
            record: dict[str, Any] = {"path": path, "body": body, "status": None}
            self.requests.append(record)
            action = self.script.pop(0) if self.script else "ok"
        status, payload = self._decide(action, path, body)
        with self._lock:
            record["status"] = status
        envelope = {"ok": status == 200, **payload}
        if status != 200:
            envelope["error_code"] = status
        return status, envelope

    def _decide(self, action: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if action == "hang":
            self._released.wait(self.hang_seconds)  # then answer normally: a slow Telegram
        prefix = f"/bot{self.token}/"
        if not path.startswith(prefix):
            return 401, {"description": "Unauthorized"}
        if path[len(prefix) :].split("?")[0] != "sendMessage":
            return 404, {"description": "Not Found"}
        if action == "rate_limited":
            return 429, {
                "description": f"Too Many Requests: retry after {self.retry_after}",
                "parameters": {"retry_after": self.retry_after},
            }
        if action in ERRORS:
            return ERRORS[action]
        text = str(body.get("text", ""))
        if not body.get("chat_id"):
            return 400, {"description": "Bad Request: chat_id is empty"}
        if not text.strip():
            return 400, {"description": "Bad Request: message text is empty"}
        if len(text) > 4096:
            return 400, {"description": "Bad Request: message is too long"}
        return 200, {
            "result": {
                "message_id": len(self.requests),
                "date": int(time.time()),
                "chat": {"id": _as_chat_id(body["chat_id"]), "type": "supergroup"},
                "text": text,
            }
        }


def _as_chat_id(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value  # "@channelname"


def _read_body(handler: BaseHTTPRequestHandler) -> dict[str, Any]:
    raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    if handler.headers.get("Content-Type", "").startswith("application/json"):
        loaded = json.loads(raw or b"{}")
        return loaded if isinstance(loaded, dict) else {}
    return {k: v[0] for k, v in parse_qs(raw.decode()).items()}  # form encoding


def _send_json(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
    data = json.dumps(payload).encode()
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client timed out and left: expected after "hang"


def _telegram_handler(double: TelegramDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return  # the request line holds the token; the double stays as quiet as the client

        def do_POST(self) -> None:
            status, payload = double.answer(self.path, _read_body(self))
            _send_json(self, status, payload)

    return Handler


@dataclass
class Webhook:
    """The far end of an apprise ``json://HOST:PORT/path`` URL."""

    url: str  # host:port, to put after json://
    bodies: list[dict[str, Any]] = field(default_factory=list)  # accepted posts
    paths: list[str] = field(default_factory=list)
    failures: int = 0  # answer this many next posts with 500

    def fail_next(self, times: int = 1) -> None:
        self.failures += times


def _webhook_handler(hook: Webhook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = _read_body(self)
            hook.paths.append(self.path)
            if hook.failures > 0:
                hook.failures -= 1
                _send_json(self, 500, {"error": "scripted failure"})
                return
            hook.bodies.append(body)
            _send_json(self, 200, {})

    return Handler


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """A threaded HTTP server on a free loopback port, shut down and closed afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def telegram_server() -> Iterator[TelegramDouble]:
    """A fresh Telegram double per test; ``.settings()`` builds TelegramSettings for it."""
    double = TelegramDouble(url="")
    with _serving(_telegram_handler(double)) as port:
        double.url = f"http://127.0.0.1:{port}"
        try:
            yield double
        finally:
            double._released.set()  # let hanging handlers finish before the server closes


@pytest.fixture
def webhook_server() -> Iterator[Webhook]:
    """Records JSON posts: the far end of an apprise ``json://`` URL."""
    hook = Webhook(url="")
    with _serving(_webhook_handler(hook)) as port:
        hook.url = f"127.0.0.1:{port}"
        yield hook
