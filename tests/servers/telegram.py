"""A Telegram Bot API double on 127.0.0.1 that speaks sendMessage as documented.

It checks the token in the path, answers with Telegram's envelopes, records every request, and
can be scripted to fail the next requests (400 chat not found / migrate, 401, 403, 429 with
``retry_after``, 500, or hang past the client's timeout). Also a plain JSON webhook receiver,
so apprise's ``json://`` channel is tested over a real socket.
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

ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "chat_not_found": (400, {"description": "Bad Request: chat not found"}),
    "migrate": (
        400,
        {
            "description": "Bad Request: group chat was upgraded to a supergroup chat",
            "parameters": {"migrate_to_chat_id": -1001234567890},
        },
    ),
    "unauthorized": (401, {"description": "Unauthorized"}),
    "blocked": (403, {"description": "Forbidden: bot was blocked by the user"}),
    "rate_limited": (
        429,
        {"description": "Too Many Requests: retry after 3", "parameters": {"retry_after": 3}},
    ),
    "server_error": (500, {"description": "Internal Server Error"}),
}


@dataclass
class TelegramDouble:
    url: str
    token: str = TOKEN
    requests: list[dict[str, Any]] = field(default_factory=list)
    script: list[str] = field(default_factory=list)  # what to do with the next requests
    hang_seconds: float = 3.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def messages(self) -> list[str]:
        return [str(r["body"].get("text", "")) for r in self.requests if r["status"] == 200]

    def fail_next(self, *kinds: str) -> None:
        self.script.extend(kinds)

    def settings(self, **overrides: Any) -> TelegramSettings:
        values: dict[str, Any] = {
            "bot_token": Secret(self.token),
            "chat_id": "-100777",
            "api_url": self.url,
            "timeout": 1.0,
        }
        values.update(overrides)
        return TelegramSettings(**values)


def _handler(double: TelegramDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            ctype = self.headers.get("Content-Type", "")
            if ctype.startswith("application/json"):
                body = json.loads(raw or b"{}")
            else:
                body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            with double._lock:
                action = double.script.pop(0) if double.script else "ok"
            path_ok = self.path == f"/bot{double.token}/sendMessage"
            if action == "hang":
                time.sleep(double.hang_seconds)
                status, payload = 200, {"ok": True, "result": {"message_id": 0}}
            elif not path_ok:
                status, payload = 401, {"description": "Unauthorized"}
            elif action in ERRORS:
                status, payload = ERRORS[action]
            elif not body.get("chat_id") or not body.get("text"):
                status, payload = 400, {"description": "Bad Request: message text is empty"}
            elif len(str(body["text"])) > 4096:
                status, payload = 400, {"description": "Bad Request: message is too long"}
            else:
                status = 200
                payload = {
                    "result": {
                        "message_id": len(double.requests) + 1,
                        "date": int(time.time()),
                        "chat": {"id": body["chat_id"], "type": "supergroup"},
                        "text": body["text"],
                    }
                }
            if status != 200:
                payload = {"ok": False, "error_code": status, **payload}
            else:
                payload = {"ok": True, **payload}
            with double._lock:
                double.requests.append({"path": self.path, "body": body, "status": status})
            self._reply(status, payload)

    return Handler


@dataclass
class Webhook:
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """A threaded HTTP server on a free loopback port, shut down and joined afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def telegram_server() -> Iterator[TelegramDouble]:
    """A fresh Telegram double per test."""
    double = TelegramDouble(url="")
    with _serving(_handler(double)) as port:
        double.url = f"http://127.0.0.1:{port}"
        yield double


@pytest.fixture
def webhook_server() -> Iterator[Webhook]:
    """Records JSON posts: the far end of an apprise ``json://`` URL."""
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hook.bodies.append(json.loads(raw or b"{}"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with _serving(Handler) as port:
        hook.url = f"127.0.0.1:{port}"
        yield hook
