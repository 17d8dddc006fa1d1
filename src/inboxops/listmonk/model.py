"""Typed values of the listmonk client, and the one place listmonk's JSON becomes them.

Pure: no I/O. The parsers are strict about what list hygiene relies on (ids, e-mail, statuses)
and lenient about the rest, because listmonk adds fields between versions (list ``status``
arrived in v6.0, the page's ``search`` in v5.0); a missing optional field gets the value older
versions imply. A malformed answer raises ``ValueError``/``KeyError``/``TypeError``, which the
client turns into one :class:`~inboxops.errors.ListmonkError` line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from inboxops.config import Secret
from inboxops.errors import ConfigError

AuthStyle = Literal["auto", "token", "basic"]
AUTH_STYLES: tuple[str, ...] = ("auto", "token", "basic")

T = TypeVar("T")

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class ListmonkInstance:
    """One listmonk server and the API credentials inboxops uses on it.

    ``auth`` picks the ``Authorization`` header:

    * ``"token"``: ``token <user>:<token>``, the v4+ API-user scheme;
    * ``"basic"``: HTTP Basic ``<user>:<token>``; v2/v3 take the admin username and password
      this way, and v4+ accepts an API user and its token the same way;
    * ``"auto"`` (default): Basic, because it is the one scheme every version from v2 to v6
      accepts, so no probing request is needed. Choose ``"token"`` when a reverse proxy in
      front of listmonk does its own Basic authentication and would take the header for itself.

    Leave ``user`` and ``token`` both empty only for a v2/v3 instance without admin credentials
    (listmonk then has no authentication at all). ``url`` is the address listmonk is served at,
    path prefix included (``https://example.com/listmonk``), with or without a trailing slash.
    """

    name: str
    url: str
    user: str = ""
    token: Secret = field(default_factory=lambda: Secret(""))
    timeout: float = 30.0
    auth: AuthStyle = "auto"

    def __post_init__(self) -> None:
        where = f"listmonk instance {self.name!r}"
        if not self.name:
            raise ConfigError("a listmonk instance needs a name")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"{where}: url must look like https://host[/prefix], not {self.url!r}"
            )
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ConfigError(
                f"{where}: url must carry no credentials, query or fragment; "
                "put the API user and token in user and token"
            )
        if self.auth not in AUTH_STYLES:
            raise ConfigError(f"{where}: auth must be one of {', '.join(AUTH_STYLES)}")
        if bool(self.user) != bool(self.token):
            raise ConfigError(f"{where}: set both user and token (or neither, for an open v2/v3)")
        if not self.timeout > 0:
            raise ConfigError(f"{where}: timeout must be a positive number of seconds")

    @property
    def base_url(self) -> str:
        """The URL without a trailing slash; safe to print (it holds no credentials)."""
        return self.url.rstrip("/")


@dataclass(frozen=True, order=True)
class ListmonkVersion:
    """A listmonk release, compared by number (``raw`` keeps e.g. ``v5.1.0 (a1b2c3)``)."""

    major: int
    minor: int
    patch: int
    raw: str = field(default="", compare=False)

    def at_least(self, major: int, minor: int = 0) -> bool:
        return (self.major, self.minor) >= (major, minor)

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"


def parse_version(raw: str) -> ListmonkVersion | None:
    """``v5.1.0``, ``5.1.0``, ``v4.1.0 (abc123 2024-10-01)``; ``None`` when there is no number."""
    match = _VERSION.search(raw)
    if not match:
        return None
    major, minor, patch = match.groups()
    return ListmonkVersion(int(major), int(minor), int(patch or 0), raw)


@dataclass(frozen=True)
class Subscription:
    """A subscriber's membership of one list, as listmonk embeds it in the subscriber."""

    list_id: int
    name: str
    subscription_status: str  # unconfirmed | confirmed | unsubscribed
    type: str = ""  # public | private | temporary
    optin: str = ""  # single | double


@dataclass(frozen=True)
class Subscriber:
    """One listmonk subscriber; ``lists`` holds every membership, unsubscribed ones included."""

    id: int
    email: str
    status: str  # enabled | disabled | blocklisted
    name: str = ""
    uuid: str = ""
    lists: tuple[Subscription, ...] = ()
    attribs: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def domain(self) -> str:
        """The lower-cased part after the last ``@`` (what a domain exclusion list matches)."""
        return self.email.rpartition("@")[2].lower()

    def subscription(self, list_id: int) -> Subscription | None:
        return next((s for s in self.lists if s.list_id == list_id), None)


@dataclass(frozen=True)
class MailingList:
    """A listmonk list. ``subscriber_count`` is ``None`` when listmonk sent no counts."""

    id: int
    name: str
    type: str = ""
    optin: str = ""
    status: str = "active"  # active | archived (v6.0+; older lists are always active)
    uuid: str = ""
    tags: tuple[str, ...] = ()
    description: str = ""
    subscriber_count: int | None = None
    subscriber_statuses: Mapping[str, int] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listmonk listing.

    ``per_page`` is ``None`` for ``per_page=all``: listmonk echoes that as ``0``, which would
    read as "pages of nothing" if passed on as a number.
    """

    results: tuple[T, ...]
    total: int
    page: int
    per_page: int | None
    query: str = ""


def parse_time(value: Any) -> datetime | None:
    """listmonk's RFC3339 timestamps (micro-seconds, offset); ``None`` for absent or null."""
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def parse_subscription(obj: Mapping[str, Any]) -> Subscription:
    return Subscription(
        list_id=int(obj["id"]),
        name=str(obj.get("name", "")),
        subscription_status=str(obj.get("subscription_status", "")),
        type=str(obj.get("type", "")),
        optin=str(obj.get("optin", "")),
    )


def parse_subscriber(obj: Mapping[str, Any]) -> Subscriber:
    attribs = obj.get("attribs")
    return Subscriber(
        id=int(obj["id"]),
        email=str(obj["email"]),
        status=str(obj["status"]),
        name=str(obj.get("name") or ""),
        uuid=str(obj.get("uuid") or ""),
        lists=tuple(parse_subscription(s) for s in obj.get("lists") or ()),
        attribs=dict(attribs) if isinstance(attribs, Mapping) else {},
        created_at=parse_time(obj.get("created_at")),
        updated_at=parse_time(obj.get("updated_at")),
    )


def parse_list(obj: Mapping[str, Any]) -> MailingList:
    count = obj.get("subscriber_count")
    statuses = obj.get("subscriber_statuses")
    return MailingList(
        id=int(obj["id"]),
        name=str(obj["name"]),
        type=str(obj.get("type") or ""),
        optin=str(obj.get("optin") or ""),
        status=str(obj.get("status") or "active"),
        uuid=str(obj.get("uuid") or ""),
        tags=tuple(str(t) for t in obj.get("tags") or ()),
        description=str(obj.get("description") or ""),
        subscriber_count=int(count) if count is not None else None,
        subscriber_statuses=(
            {str(k): int(v) for k, v in statuses.items()} if isinstance(statuses, Mapping) else {}
        ),
    )


def parse_page(data: Any, parse: Callable[[Mapping[str, Any]], T]) -> Page[T]:
    """A listing's ``data``: ``{results, total, per_page, page, query}``.

    A bare array is accepted too: ``GET /api/lists?minimal=true`` answers ``[]`` when there are
    no lists at all.
    """
    if isinstance(data, list):
        items = tuple(parse(x) for x in data)
        return Page(items, total=len(items), page=1, per_page=None)
    if not isinstance(data, Mapping):
        raise TypeError("listing data is neither an object nor an array")
    per_page = int(data.get("per_page") or 0)
    return Page(
        results=tuple(parse(x) for x in data.get("results") or ()),
        total=int(data.get("total") or 0),
        page=int(data.get("page") or 1),
        per_page=per_page or None,
        query=str(data.get("query") or ""),
    )
