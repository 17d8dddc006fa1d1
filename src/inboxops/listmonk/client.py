"""A thin typed client for listmonk's HTTP API: the calls list hygiene needs, on any instance.

One :class:`ListmonkClient` per instance (several run side by side: nothing is global). The
HTTP policy (auth header, retries, one-line errors, secrets) lives in :mod:`.api`; this module
is the calls, and two things plain calls would get wrong:

* **Paging that never skips.** listmonk pages by OFFSET, so a row that leaves the result set
  while we page (deleted, blocklisted, unsubscribed, by anyone) shifts every later row forward
  and one is silently skipped. :meth:`ListmonkClient.iter_subscribers` pages by key instead:
  ``subscribers.id > <last id>`` in the SQL ``query``, ascending by id, always page 1. That
  needs the ``query`` parameter, which v5+ guards with ``subscribers:sql_query``; without it
  the client pages by offset with overlapping windows, each checked to follow on from the last
  id seen, stepping back when rows vanished underneath (``_iter_offset``).
* **Batches.** Bulk blocklist and list changes go out ``batch_size`` ids per request, so a
  scrub of 100,000 subscribers costs 51 listing requests plus one per batch.
* **Settings.** ``PUT /api/settings`` takes the whole object and writes omitted keys as zero
  values, and ``GET`` masks passwords as ``•••`` which a naive round trip would store; see
  :meth:`ListmonkClient.update_settings`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote

import httpx

from inboxops.errors import ListmonkError
from inboxops.listmonk.api import MAX_RETRIES, Api, PermissionDenied
from inboxops.listmonk.model import (
    ListmonkInstance,
    ListmonkVersion,
    MailingList,
    Page,
    Subscriber,
    parse_list,
    parse_page,
    parse_subscriber,
    parse_version,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 2000  # rows per listing request: 100,000 subscribers scanned in 51 requests
BATCH_SIZE = 2000  # ids per bulk request
MAX_STEP_BACKS = 25  # beyond one per window read: rows vanish faster than we can page
SQL_QUERY = "subscribers:sql_query"
ListAction = Literal["add", "remove", "unsubscribe"]

_MASK = "•"


def _check_ids(ids: Iterable[int], what: str) -> list[int]:
    """Unique positive ids in first-seen order (listmonk 400s the whole batch on one bad id)."""
    unique = list(dict.fromkeys(ids))
    bad = [i for i in unique if isinstance(i, bool) or not isinstance(i, int) or i < 1]
    if bad:
        raise ValueError(f"{what}: ids must be positive integers, got {bad[:5]!r}")
    return unique


def _keyset_query(after: int, query: str) -> str:
    """``subscribers.id > after``, AND the caller's expression (a trailing ``--`` comment in it
    cannot swallow the closing parenthesis: it gets a line of its own)."""
    key = f"subscribers.id > {int(after)}"
    return f"{key} AND ({query}\n)" if query.strip() else key


def _window(end: int, size: int) -> tuple[int, int]:
    """``(offset, per_page)`` of the next offset window, starting 1 to q+1 rows before ``end``.

    listmonk's offset is ``(page - 1) * per_page``, so an offset is only reachable as a multiple
    of the page size; picking ``q = (end-1) // size`` pages of ``(end-1) // q`` rows lands just
    before ``end`` with a window of ``size`` to ``2 * size`` rows. The overlap (at most q+1 rows)
    is what lets each window prove it follows on from the last id seen; ``size`` grows with
    ``sqrt(end)`` so the overlap stays a small fraction of a window on huge lists.
    """
    if end <= 1:
        return 0, size
    size = max(size, 4 * math.isqrt(end))
    q = max(1, (end - 1) // size)
    per_page = (end - 1) // q
    return q * per_page, per_page


class ListmonkClient:
    """The listmonk API of one instance; use as a context manager or call :meth:`close`.

    ``transport`` and ``sleep`` are injection points for tests and embedding (the default
    sleeps for real between retries). ``max_retries`` counts retries after the first attempt.
    ``batch_size`` is the default number of ids per bulk request, ``page_size`` the default
    rows per listing request.
    """

    def __init__(
        self,
        instance: ListmonkInstance,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_retries: int = MAX_RETRIES,
        batch_size: int = BATCH_SIZE,
        page_size: int = PAGE_SIZE,
    ) -> None:
        if max_retries < 0 or batch_size < 1 or page_size < 1:
            raise ValueError("max_retries must be >= 0, batch_size and page_size >= 1")
        self.instance = instance
        self._api = Api(instance, transport=transport, sleep=sleep, max_retries=max_retries)
        self._batch_size = batch_size
        self._page_size = page_size
        self._version: ListmonkVersion | None = None
        self._version_known = False
        self._keyset_denied = False  # learnt from a 403 for subscribers:sql_query

    def __enter__(self) -> ListmonkClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._api.close()

    def __repr__(self) -> str:
        return f"ListmonkClient({self.instance.name!r}, {self.instance.base_url!r})"

    # -- server ------------------------------------------------------------------------------

    def check(self) -> ListmonkVersion | None:
        """Credentials and reachability (``/api/health`` needs auth), then the version.

        Raises :class:`ListmonkError` saying what to fix; the version is ``None`` on listmonk
        older than v2.5, which has no ``/api/config``.
        """
        if self._api.data("GET", "api/health", "the health check") is not True:
            raise self._api.unexpected("the health check")
        return self.version()

    def version(self) -> ListmonkVersion | None:
        """The server's version from ``GET /api/config`` (cached per client)."""
        if not self._version_known:
            response = self._api.send("GET", "api/config", "the version check")
            if response.status_code == 404:
                self._version = None  # before v2.5
            elif response.status_code != 200:
                raise self._api.refusal(response, "api/config", "the version check")
            else:
                data = self._api.payload(response, "the version check")
                raw = data.get("version") if isinstance(data, Mapping) else None
                self._version = parse_version(str(raw or ""))
            self._version_known = True
        return self._version

    # -- lists -------------------------------------------------------------------------------

    def lists(self) -> list[MailingList]:
        """Every list in one request (``per_page=all``), with subscriber counts, by id."""
        data = self._api.data("GET", "api/lists", "listing lists", params={"per_page": "all"})
        page = self._api.parse(lambda: parse_page(data, parse_list), "listing lists")
        return sorted(page.results, key=lambda lst: lst.id)

    def get_list(self, list_id: int) -> MailingList:
        data = self._api.data("GET", f"api/lists/{int(list_id)}", f"list {list_id}")
        return self._api.parse(lambda: parse_list(data), f"list {list_id}")

    # -- subscribers: reading ----------------------------------------------------------------

    def get_subscriber(self, subscriber_id: int) -> Subscriber:
        what = f"subscriber {subscriber_id}"
        data = self._api.data("GET", f"api/subscribers/{int(subscriber_id)}", what)
        return self._api.parse(lambda: parse_subscriber(data), what)

    def subscribers_page(
        self,
        *,
        query: str = "",
        list_ids: Sequence[int] = (),
        subscription_status: str | None = None,
        page: int = 1,
        per_page: int | None = PAGE_SIZE,
        order_by: str | None = None,
        order: Literal["asc", "desc"] | None = None,
    ) -> Page[Subscriber]:
        """One page of ``GET /api/subscribers``, exactly as listmonk pages it (by OFFSET).

        ``per_page=None`` asks for ``all``. ``order=None`` leaves listmonk's default (DESC);
        ``order_by=None`` sorts by id. With several ``list_ids`` a subscriber on more than one
        of them can appear more than once. Use :meth:`iter_subscribers` to walk everything.
        """
        params: list[tuple[str, str | int]] = [
            ("page", page),
            ("per_page", "all" if per_page is None else per_page),
        ]
        if order is not None:
            params.append(("order", order))
        if order_by is not None:
            params.append(("order_by", order_by))
        if query:
            params.append(("query", query))
        params += [("list_id", int(i)) for i in list_ids]
        if subscription_status:
            params.append(("subscription_status", subscription_status))
        what = "the subscriber query" if query else "listing subscribers"
        data = self._api.data("GET", "api/subscribers", what, params=params)
        return self._api.parse(lambda: parse_page(data, parse_subscriber), what)

    def count_subscribers(
        self,
        *,
        query: str = "",
        list_ids: Sequence[int] = (),
        subscription_status: str | None = None,
    ) -> int:
        """How many match (one row fetched); the way to count around a by-query blocklist."""
        return self.subscribers_page(
            query=query, list_ids=list_ids, subscription_status=subscription_status, per_page=1
        ).total

    def iter_subscribers(
        self,
        *,
        query: str = "",
        list_ids: Sequence[int] = (),
        subscription_status: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Subscriber]:
        """Every matching subscriber once, ascending by id, never skipping one that stays.

        Pages by key (see the module docstring). When the API user lacks
        ``subscribers:sql_query`` (v5+) and no ``query`` was given, falls back to overlapping
        offset windows; with a ``query`` that permission is required and its absence is an error
        naming it. Subscribers added while paging may or may not be included.
        """
        size = page_size or self._page_size
        if not self._keyset_denied:
            yielded = False
            try:
                for sub in self._iter_keyset(query, list_ids, subscription_status, size):
                    yielded = True
                    yield sub
                return
            except PermissionDenied as exc:
                if exc.permission != SQL_QUERY or query or yielded:
                    raise
                self._keyset_denied = True
                log.info(
                    "event=listmonk_offset_paging instance=%s reason=no_sql_query_permission",
                    self.instance.name,
                )
        yield from self._iter_offset(list_ids, subscription_status, size)

    def _iter_keyset(
        self, query: str, list_ids: Sequence[int], status: str | None, size: int
    ) -> Iterator[Subscriber]:
        last = 0
        while True:
            page = self._checked(
                self.subscribers_page(
                    query=_keyset_query(last, query),
                    list_ids=list_ids,
                    subscription_status=status,
                    per_page=size,
                    order="asc",
                ),
                size,
            )
            before = last
            for sub in page.results:
                if sub.id > last:  # a subscriber on several of list_ids comes more than once
                    last = sub.id
                    yield sub
            if len(page.results) < size:
                return
            if last == before:  # every row is above the cursor, so the query was not applied
                raise self._garbled("the same subscribers again")

    def _iter_offset(
        self, list_ids: Sequence[int], status: str | None, size: int
    ) -> Iterator[Subscriber]:
        """Overlapping offset windows, each checked to start at or before the last id seen.

        Rows come ascending by id and new subscribers get higher ids, so rows only move forward
        in the order when rows before them vanish. A window whose first row is at or below the
        last id seen is contiguous with what was read, so nothing between was skipped. One that
        starts above it means rows vanished underneath: it is read again from a little further
        back (``size/16`` rows, doubling while it keeps happening), which still yields the new
        rows, so steady churn costs one extra request per window, not a re-scan.
        """
        last, offset, per_page = 0, 0, size
        misses = step_backs = windows = 0
        while True:
            page = self._checked(
                self.subscribers_page(
                    list_ids=list_ids,
                    subscription_status=status,
                    page=offset // per_page + 1,
                    per_page=per_page,
                    order="asc",
                ),
                per_page,
            )
            rows = page.results
            if offset and (not rows or rows[0].id > last):
                misses, step_backs = misses + 1, step_backs + 1
                if step_backs > MAX_STEP_BACKS + windows:
                    raise ListmonkError(
                        f"subscribers on listmonk instance {self.instance.name} changed faster "
                        "than they could be paged; run again, or grant subscribers:sql_query "
                        f"to API user {self.instance.user!r} for paging by id"
                    )
                back = max(0, offset - max(32, size // 16) * 2 ** (misses - 1))
                offset, per_page = _window(back + 1, size) if back else (0, size)
                continue
            misses, windows = 0, windows + 1
            for sub in rows:
                if sub.id > last:
                    last = sub.id
                    yield sub
            if len(rows) < per_page:
                return
            offset, per_page = _window(offset + len(rows), size)

    def _checked(self, page: Page[Subscriber], per_page: int) -> Page[Subscriber]:
        """A page whose size is not the one asked for would end the walk early, unnoticed."""
        if page.per_page != per_page:
            raise self._garbled(f"pages of {page.per_page or 'all'} when asked for {per_page}")
        return page

    def _garbled(self, what: str) -> ListmonkError:
        return ListmonkError(
            f"listmonk instance {self.instance.name} answered {what} while paging subscribers; "
            "check that a proxy in front of it passes query parameters and does not cache"
        )

    # -- subscribers: changing ---------------------------------------------------------------

    def blocklist(self, ids: Iterable[int], *, batch_size: int | None = None) -> int:
        """Blocklist subscribers by id, ``batch_size`` per request; returns how many were sent.

        listmonk also unsubscribes them from every list, and ignores unknown ids.
        """
        return self._batched(
            "api/subscribers/blocklist",
            _check_ids(ids, "blocklist"),
            lambda chunk: {"ids": chunk},
            "blocklisting subscribers",
            batch_size,
        )

    def blocklist_by_query(self, query: str, *, list_ids: Sequence[int] = ()) -> None:
        """Blocklist everything ``query`` matches (optionally within ``list_ids``) in one call.

        listmonk returns no count: use :meth:`count_subscribers` before and after. v5+ needs
        ``subscribers:sql_query``. Note the route is PUT (listmonk's docs show POST, a 405).
        """
        if not query.strip():
            raise ValueError("blocklist_by_query needs a query (an empty one matches nothing)")
        body = {"query": query, "list_ids": [int(i) for i in list_ids]}
        self._api.data("PUT", "api/subscribers/query/blocklist", "the query blocklist", json=body)
        log.info("event=listmonk_query_blocklisted instance=%s", self.instance.name)

    def unsubscribe_from_lists(
        self, ids: Iterable[int], list_ids: Sequence[int], *, batch_size: int | None = None
    ) -> int:
        """Mark the subscriptions to ``list_ids`` unsubscribed; other lists and the subscriber's
        own status are untouched (unlike blocklisting). Returns how many ids were sent."""
        return self._change_lists(ids, "unsubscribe", list_ids, None, batch_size)

    def remove_from_lists(
        self, ids: Iterable[int], list_ids: Sequence[int], *, batch_size: int | None = None
    ) -> int:
        """Delete the subscriptions to ``list_ids`` (no unsubscribed trace is kept)."""
        return self._change_lists(ids, "remove", list_ids, None, batch_size)

    def add_to_lists(
        self,
        ids: Iterable[int],
        list_ids: Sequence[int],
        *,
        status: Literal["confirmed", "unconfirmed", "unsubscribed"] = "confirmed",
        batch_size: int | None = None,
    ) -> int:
        """Subscribe to ``list_ids`` with ``status`` (an existing subscription takes it too)."""
        return self._change_lists(ids, "add", list_ids, status, batch_size)

    def _change_lists(
        self,
        ids: Iterable[int],
        action: ListAction,
        list_ids: Sequence[int],
        status: str | None,
        batch_size: int | None,
    ) -> int:
        targets = _check_ids(list_ids, f"{action} lists")
        if not targets:
            raise ValueError(f"{action}: no list ids given")

        def body(chunk: list[int]) -> dict[str, Any]:
            out: dict[str, Any] = {"ids": chunk, "action": action, "target_list_ids": targets}
            if status is not None:
                out["status"] = status
            return out

        return self._batched(
            "api/subscribers/lists",
            _check_ids(ids, action),
            body,
            f"list change {action!r} for lists {targets}",
            batch_size,
        )

    def _batched(
        self,
        path: str,
        ids: list[int],
        body: Callable[[list[int]], dict[str, Any]],
        what: str,
        batch_size: int | None,
    ) -> int:
        size = batch_size or self._batch_size
        done = 0
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            try:
                self._api.data("PUT", path, what, json=body(chunk))
            except ListmonkError as exc:
                if not done:
                    raise
                raise ListmonkError(
                    f"{exc} ({done} of {len(ids)} subscribers were done before it failed; "
                    "running again is safe)"
                ) from None
            done += len(chunk)
        log.info(
            "event=listmonk_bulk instance=%s what=%r ids=%d requests=%d",
            self.instance.name,
            what,
            done,
            math.ceil(done / size),
        )
        return done

    # -- settings ----------------------------------------------------------------------------

    def get_settings(self) -> dict[str, Any]:
        """All settings; listmonk masks passwords and keys as ``•••`` in this answer."""
        data = self._api.data("GET", "api/settings", "reading settings")
        if not isinstance(data, dict):
            raise self._api.unexpected("reading settings")
        return data

    def update_settings(self, changes: Mapping[str, Any]) -> bool:
        """Change some settings and keep every other one, secrets included.

        Returns ``True`` when listmonk applies them now (it then reloads: expect a few seconds
        of refused connections, which later calls ride out with their retries), ``False`` when
        it answered ``needs_restart`` because a campaign is running (saved, applied at the next
        reload). Unknown keys are refused here, because listmonk silently ignores them.

        On v6+ a single key goes through ``PUT /api/settings/:key`` (no other key is touched).
        Otherwise the whole object is sent, since listmonk writes omitted keys as zero values:
        GET, blank every all-``•`` string (listmonk keeps a stored secret only for ``""``, and
        would store the bullets otherwise), apply ``changes``, PUT.
        """
        if not changes:
            return True
        current = self.get_settings()
        unknown = sorted(set(changes) - set(current))
        if unknown:
            raise ListmonkError(
                f"listmonk instance {self.instance.name} has no setting(s) {', '.join(unknown)}; "
                "check the key names (listmonk would ignore them silently)"
            )
        version = self.version()
        if len(changes) == 1 and version is not None and version.at_least(6):
            [(key, value)] = changes.items()
            path = f"api/settings/{quote(key, safe='')}"
            data = self._api.data("PUT", path, f"setting {key}", json=value)
        else:
            body = {k: _blank_masked(v) for k, v in current.items()}
            body.update(changes)
            data = self._api.data("PUT", "api/settings", "saving settings", json=body)
        applied = not (isinstance(data, Mapping) and data.get("needs_restart"))
        log.info(
            "event=listmonk_settings_saved instance=%s keys=%s applied=%s",
            self.instance.name,
            ",".join(sorted(changes)),
            applied,
        )
        return applied


def _blank_masked(value: Any) -> Any:
    """Copy of a settings value with every all-``•`` string (a masked secret) made ``""``."""
    if isinstance(value, str):
        return "" if value and value.strip(_MASK) == "" else value
    if isinstance(value, list):
        return [_blank_masked(v) for v in value]
    if isinstance(value, dict):
        return {k: _blank_masked(v) for k, v in value.items()}
    return value
