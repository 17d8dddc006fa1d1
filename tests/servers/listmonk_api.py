"""The vocabulary of the listmonk double: a request as received, the API user it authenticates
as, an error answer, the masks and secrets of settings, and how a request's parameters read
(listmonk's 400 messages included)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SQL_QUERY = "subscribers:sql_query"
MASK = "•"
SECRET_PATHS: tuple[tuple[str, ...], ...] = (
    ("upload.s3.aws_secret_access_key",),
    ("bounce.sendgrid_key",),
    ("bounce.postmark", "password"),
    ("smtp", "*", "password"),
    ("messengers", "*", "password"),
    ("bounce.mailboxes", "*", "password"),
)


class HttpError(Exception):
    """An error answer: listmonk's ``{"message": ...}`` with a status (and extra headers)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


@dataclass
class ApiUser:
    """A v4+ API user; ``permissions=None`` is the Super Admin role (every check passes)."""

    name: str
    token: str
    permissions: set[str] | None = None

    def can(self, permission: str) -> bool:
        return self.permissions is None or permission in self.permissions


@dataclass
class Request:
    """One request as received; ``status`` is ``None`` while open or when dropped."""

    method: str
    path: str  # without the prefix and the query string
    endpoint: str  # route, e.g. "GET /api/subscribers/:id"; method and path when unknown
    params: dict[str, list[str]]
    body: Any
    auth_scheme: str  # "basic", "token", "" (lower-cased first word of Authorization)
    status: int | None = None

    def param(self, name: str) -> str:
        return self.params.get(name, [""])[0]


def parse_id(value: str, message: str = "invalid ID") -> int:
    try:
        number = int(value)
    except ValueError:
        raise HttpError(400, message) from None
    if number < 1:
        raise HttpError(400, message)
    return number


def parse_ids(value: Any, empty: str) -> list[int]:
    """A JSON array of positive ints; ``empty`` is the 400 message for none ("" allows none)."""
    if not value:
        if empty:
            raise HttpError(400, empty)
        return []
    if not isinstance(value, list) or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value
    ):
        raise HttpError(400, "One or more IDs are invalid: ids")
    return [int(v) for v in value]


def body_of(req: Request) -> dict[str, Any]:
    if not isinstance(req.body, dict):
        raise HttpError(400, "invalid JSON body")
    return req.body


def paging(req: Request) -> tuple[int, int]:
    """knadh/paginator as listmonk configures it: ``all`` -> 0 (no limit), junk or < 1 -> 20,
    no maximum; page < 1 -> 1."""
    raw = req.param("per_page")
    if raw == "all":
        per_page = 0
    else:
        try:
            per_page = int(raw)
        except ValueError:
            per_page = 20
        per_page = per_page if per_page >= 1 else 20
    try:
        page = max(int(req.param("page")), 1)
    except ValueError:
        page = 1
    return page, per_page
