"""The data half of the listmonk double (``tests/servers/listmonk.py`` is the HTTP half).

:class:`ListmonkStore` keeps ``subscribers``, ``lists`` and ``subscriber_lists`` in its own
in-memory SQLite and evaluates the ``query`` expression for real (``SPLIT_PART`` registered,
``LIKE`` case-sensitive as in PostgreSQL, read only, v5+ table allow-list), so paging by
``subscribers.id > N`` and domain queries work as on listmonk. It answers the API's handlers
(``_h_<method>_<path>``) once the HTTP half has routed and authenticated a request: OFFSET
paging, ``per_page=all`` echoed as ``0``, junk ``per_page`` -> 20, DESC by id by default,
duplicates with several ``list_id``; blocklisting unsubscribes every list; list actions
add/remove/unsubscribe; settings as ``listmonk_settings.py`` describes. Tests seed and inspect
rows through its data methods (``add_list``, ``add_subscriber``, ``seed``, ``status_of``,
``memberships``). A request, its user and its parameters: ``listmonk_api.py``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from tests.servers.listmonk_api import (
    MASK,
    SQL_QUERY,
    ApiUser,
    HttpError,
    Request,
    body_of,
    paging,
    parse_id,
    parse_ids,
)
from tests.servers.listmonk_settings import SettingsHandlers, default_settings

__all__ = ["MASK", "SQL_QUERY", "ApiUser", "HttpError", "ListmonkStore", "Request"]

QUERY_TABLES = frozenset(
    {"subscribers", "lists", "subscriber_lists", "campaigns", "campaign_lists"}
    | {"campaign_views", "links", "link_clicks", "bounces"}
)


SCHEMA = """
PRAGMA foreign_keys = ON;
PRAGMA case_sensitive_like = ON;
CREATE TABLE subscribers (
    id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE, email TEXT NOT NULL,
    name TEXT NOT NULL, attribs TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'enabled', created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE UNIQUE INDEX subscribers_email ON subscribers (LOWER(email));
CREATE TABLE lists (
    id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL, name TEXT NOT NULL,
    type TEXT NOT NULL, optin TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active',
    tags TEXT NOT NULL DEFAULT '[]', description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE subscriber_lists (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    list_id INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    meta TEXT NOT NULL DEFAULT '{}', status TEXT NOT NULL DEFAULT 'unconfirmed',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (subscriber_id, list_id));
CREATE INDEX subscriber_lists_list ON subscriber_lists (list_id);
"""
_COLS = (
    "subscribers.id, subscribers.uuid, subscribers.email, subscribers.name, "
    "subscribers.attribs, subscribers.status, subscribers.created_at, subscribers.updated_at"
)
_LIST_COLS = (
    *("id", "uuid", "name", "type", "optin", "status", "tags", "description"),
    *("created_at", "updated_at"),
)
_ORDER_BY = ("email", "status", "name", "created_at", "updated_at")
_SUB_STATUSES = ("unconfirmed", "confirmed", "unsubscribed")
_IN_IDS = "(SELECT value FROM json_each(?))"  # one parameter, however many ids


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _split_part(text: str | None, delim: str, n: int) -> str | None:
    if text is None:
        return None
    if n == 0:
        raise ValueError("field position must not be zero")
    parts = text.split(delim)
    index = n - 1 if n > 0 else n
    return parts[index] if -len(parts) <= index < len(parts) else ""


def _regexp(pattern: str, value: str | None) -> bool:
    return value is not None and re.search(pattern, value, re.IGNORECASE) is not None


class ListmonkStore(SettingsHandlers):
    """One listmonk instance's data and API handlers, behaving as ``version`` does (v5+: the
    ``subscribers:sql_query`` permission, the query table allow-list and ``search``; v6+: list
    ``status`` and ``PUT /api/settings/:key``)."""

    def __init__(self, version: str = "v6.2.0") -> None:
        self.version = version
        major, minor = (int(x) for x in re.findall(r"\d+", version)[:2])
        self.major, self.minor = major, minor
        self.settings = default_settings(major)
        self.campaign_running = False  # settings changes then answer needs_restart
        self.reload_drops = 2  # connections dropped by the reload after a settings change
        self._reload_left = 0
        self.lock = threading.RLock()
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.executescript(SCHEMA)
        self.db.create_function("split_part", 3, _split_part, deterministic=True)
        self.db.create_function("regexp", 2, _regexp, deterministic=True)

    # -- data ----------------------------------------------------------------------------------

    def add_list(
        self, name: str, *, type: str = "private", optin: str = "single", tags: Sequence[str] = ()
    ) -> int:
        with self.lock, self.db:
            now = _now()
            cur = self.db.execute(
                "INSERT INTO lists (uuid, name, type, optin, tags, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (str(uuid.uuid4()), name, type, optin, json.dumps(list(tags)), now, now),
            )
            return int(cur.lastrowid or 0)

    def add_subscriber(
        self,
        email: str,
        *,
        name: str = "",
        status: str = "enabled",
        lists: Mapping[int, str] | Sequence[int] = (),
        attribs: Mapping[str, Any] | None = None,
    ) -> int:
        """One subscriber; ``lists`` maps list id to subscription status (default confirmed)."""
        with self.lock, self.db:
            now = _now()
            cur = self.db.execute(
                "INSERT INTO subscribers (uuid, email, name, attribs, status, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    str(uuid.uuid4()),
                    email,
                    name or email.split("@")[0],
                    json.dumps(attribs or {}),
                    status,
                    now,
                    now,
                ),
            )
            sub_id = int(cur.lastrowid or 0)
            self._subscribe([sub_id], lists, now)
            return sub_id

    def seed(
        self,
        n: int,
        *,
        domains: Sequence[str] = ("example.com",),
        lists: Mapping[int, str] | Sequence[int] = (),
        status: str = "enabled",
    ) -> list[int]:
        """``n`` subscribers ``user<id>@<domain>``, domains taken in turn, all on ``lists``
        (list id -> subscription status, or a sequence for confirmed). Returns their ids."""
        with self.lock, self.db:
            row = self.db.execute(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = "
                "'subscribers'), 0), COALESCE((SELECT MAX(id) FROM subscribers), 0))"
            ).fetchone()
            ids = list(range(int(row[0]) + 1, int(row[0]) + 1 + n))
            now = _now()
            self.db.executemany(
                "INSERT INTO subscribers (id, uuid, email, name, attribs, status, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, '{}', ?, ?, ?)",
                (
                    (
                        i,
                        str(uuid.uuid4()),
                        f"user{i}@{domains[k % len(domains)]}",
                        f"User {i}",
                        status,
                        now,
                        now,
                    )
                    for k, i in enumerate(ids)
                ),
            )
            self._subscribe(ids, lists, now)
        return ids

    def _subscribe(
        self, ids: Sequence[int], lists: Mapping[int, str] | Sequence[int], now: str
    ) -> None:
        statuses = lists if isinstance(lists, Mapping) else dict.fromkeys(lists, "confirmed")
        for list_id, sub_status in statuses.items():
            self.db.executemany(
                "INSERT INTO subscriber_lists (subscriber_id, list_id, status, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?)",
                ((i, list_id, sub_status, now, now) for i in ids),
            )

    def delete_subscribers(self, ids: Sequence[int]) -> None:
        with self.lock, self.db:
            self.db.execute(f"DELETE FROM subscribers WHERE id IN {_IN_IDS}", (json.dumps(ids),))

    def status_of(self, subscriber_id: int) -> str | None:
        rows = self.sql("SELECT status FROM subscribers WHERE id = ?", subscriber_id)
        return str(rows[0][0]) if rows else None

    def memberships(self, subscriber_id: int) -> dict[int, str]:
        """list id -> subscription status of one subscriber."""
        rows = self.sql(
            "SELECT list_id, status FROM subscriber_lists WHERE subscriber_id = ?", subscriber_id
        )
        return {int(r[0]): str(r[1]) for r in rows}

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.lock:
            return list(self.db.execute(query, params).fetchall())

    # -- handlers: server and lists ------------------------------------------------------------

    def _h_get_health(self, req: Request, user: ApiUser | None) -> Any:
        return True

    def _h_get_api_health(self, req: Request, user: ApiUser | None) -> Any:
        return True

    def _h_get_api_config(self, req: Request, user: ApiUser | None) -> Any:
        smtp = [f"email-{s['name']}" for s in self.settings.get("smtp", []) if s.get("enabled")]
        return {
            "version": self.version,
            "needs_restart": False,
            "messengers": ["email", *smtp],
            "root_url": self.settings.get("app.root_url", ""),
            "lang": "en",
        }

    def _h_get_api_lists(self, req: Request, user: ApiUser | None) -> Any:
        where, args = "", []
        if req.param("query"):
            where, args = "WHERE name LIKE ?", [f"%{req.param('query')}%"]
        rows = self.db.execute(f"SELECT * FROM lists {where} ORDER BY id", args).fetchall()
        if req.param("minimal") == "true":
            return [self._list_json(r, counts=False) for r in rows] if rows else []
        page, per_page = paging(req)
        total = len(rows)
        chosen = rows if not per_page else rows[(page - 1) * per_page : page * per_page]
        results = [self._list_json(r, counts=True) for r in chosen]
        return {"results": results, "total": total, "per_page": per_page, "page": page}

    def _h_get_api_lists_id(self, req: Request, user: ApiUser | None, id: str) -> Any:
        row = self.db.execute("SELECT * FROM lists WHERE id = ?", (parse_id(id),)).fetchone()
        if row is None:
            raise HttpError(400, "List not found")
        return self._list_json(row, counts=True)

    def _list_json(self, row: Sequence[Any], *, counts: bool) -> dict[str, Any]:
        out = dict(zip(_LIST_COLS, row, strict=True))
        out["tags"] = json.loads(out["tags"])
        status, list_id = out.pop("status"), out["id"]
        if self.major >= 6:
            out["status"] = status
        if counts:
            statuses = dict(
                self.db.execute(
                    "SELECT status, COUNT(*) FROM subscriber_lists WHERE list_id = ? "
                    "GROUP BY status",
                    (list_id,),
                ).fetchall()
            )
            out["subscriber_count"] = sum(statuses.values())
            out["subscriber_statuses"] = statuses
        return out

    # -- handlers: subscribers -----------------------------------------------------------------

    def _h_get_api_subscribers(self, req: Request, user: ApiUser | None) -> Any:
        query, search = req.param("query").strip(), req.param("search").strip()
        self._check_query(query, user)
        list_ids = [parse_id(x, "Invalid ID(s)") for x in req.params.get("list_id", []) if x]
        order_by = req.param("order_by")
        column = f"subscribers.{order_by}" if order_by in _ORDER_BY else "subscribers.id"
        direction = "ASC" if req.param("order").lower() == "asc" else "DESC"
        page, per_page = paging(req)
        ids_sql, args = self._filter(query, list_ids, req.param("subscription_status"), search)
        total = self._run(f"SELECT COUNT(*) {ids_sql}", args)[0][0]
        rows = self._run(
            f"SELECT {_COLS} {ids_sql} ORDER BY {column} {direction} LIMIT ? OFFSET ?",
            [*args, per_page or -1, (page - 1) * per_page],
        )
        out: dict[str, Any] = {"query": query, "results": self._subscribers_json(rows)}
        if self.major >= 5:
            out["search"] = search
        out.update(total=total, per_page=per_page, page=page)
        return out

    def _h_get_api_subscribers_id(self, req: Request, user: ApiUser | None, id: str) -> Any:
        rows = self.db.execute(f"SELECT {_COLS} FROM subscribers WHERE id = ?", (parse_id(id),))
        found = self._subscribers_json(rows.fetchall())
        if not found:
            raise HttpError(400, "Subscriber not found")
        return found[0]

    def _h_put_api_subscribers_blocklist(self, req: Request, user: ApiUser | None) -> Any:
        self._blocklist(parse_ids(body_of(req).get("ids"), "No IDs given."))
        return True

    def _h_put_api_subscribers_id_blocklist(
        self, req: Request, user: ApiUser | None, id: str
    ) -> Any:
        self._blocklist([parse_id(id)])
        return True

    def _h_put_api_subscribers_query_blocklist(self, req: Request, user: ApiUser | None) -> Any:
        self._blocklist(self._by_query(body_of(req), user))
        return True

    def _h_put_api_subscribers_lists(self, req: Request, user: ApiUser | None) -> Any:
        body = body_of(req)
        self._change_lists(parse_ids(body.get("ids"), "No IDs given."), body, upsert=True)
        return True

    def _h_put_api_subscribers_query_lists(self, req: Request, user: ApiUser | None) -> Any:
        body = body_of(req)
        self._change_lists(self._by_query(body, user), body, upsert=False)
        return True

    def _check_query(self, query: str, user: ApiUser | None) -> None:
        if query and self.major >= 5 and user is not None and not user.can(SQL_QUERY):
            raise HttpError(403, f"Permission denied: {SQL_QUERY}")

    def _filter(
        self, query: str, list_ids: Sequence[int], sub_status: str, search: str
    ) -> tuple[str, list[Any]]:
        """``FROM ... WHERE ...`` as listmonk builds it: a LEFT JOIN on the subscriptions to
        ``list_ids`` (so a subscriber on several of them comes once per list), the caller's
        ``query`` embedded as it is."""
        where: list[str] = []
        args: list[Any] = []
        # no list_id: subscriber_lists columns are NULL (a key no row has keeps it an index probe)
        join = (
            "LEFT JOIN subscriber_lists ON subscriber_lists.subscriber_id = subscribers.id "
            "AND subscriber_lists.list_id = 0"
        )
        if list_ids:
            join = "LEFT JOIN subscriber_lists ON subscriber_lists.subscriber_id = subscribers.id"
            where.append(f"subscriber_lists.list_id IN {_IN_IDS}")
            args.append(json.dumps(list(list_ids)))
            if sub_status:
                where.append("subscriber_lists.status = ?")
                args.append(sub_status)
        if search and self.major >= 5:
            where.append("(subscribers.name REGEXP ? OR subscribers.email REGEXP ?)")
            args += [search, search]
        if query:
            where.append(f"({query}\n)")
        return f"FROM subscribers {join} WHERE {' AND '.join(where) or '1'}", args

    def _run(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run with the caller's query in it: read only (and the v5+ table allow-list)."""
        self.db.set_authorizer(self._authorize)
        try:
            return list(self.db.execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise HttpError(400, f"Error preparing subscriber query: {exc}") from None
        finally:
            self.db.set_authorizer(None)

    def _authorize(self, action: int, arg1: str | None, *_: Any) -> int:
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_FUNCTION) or arg1 == "sqlite_master":
            return sqlite3.SQLITE_OK  # (SQLite reads its own schema to build json_each)
        allowed = self.major < 5 or arg1 in QUERY_TABLES or arg1 == "json_each"  # our id lists
        if action == sqlite3.SQLITE_READ and allowed:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    def _by_query(self, body: dict[str, Any], user: ApiUser | None) -> list[int]:
        query = str(body.get("query") or "").strip()
        search = str(body.get("search") or "").strip() if self.major >= 5 else ""
        everyone = bool(body.get("all")) and self.major >= 5
        self._check_query(query, user)
        if not (query or search or everyone):
            raise HttpError(400, "Invalid fields: query")
        list_ids = parse_ids(body.get("list_ids") or [], "")
        sql, args = self._filter(
            query, list_ids, str(body.get("subscription_status") or ""), search
        )
        return [int(r[0]) for r in self._run(f"SELECT DISTINCT subscribers.id {sql}", args)]

    def _blocklist(self, ids: Sequence[int]) -> None:
        now, arg = _now(), json.dumps(list(ids))
        with self.db:
            self.db.execute(
                "UPDATE subscribers SET status = 'blocklisted', updated_at = ? "
                f"WHERE id IN {_IN_IDS}",
                (now, arg),
            )
            self.db.execute(
                "UPDATE subscriber_lists SET status = 'unsubscribed', updated_at = ? "
                f"WHERE subscriber_id IN {_IN_IDS}",
                (now, arg),
            )

    def _change_lists(self, ids: Sequence[int], body: dict[str, Any], *, upsert: bool) -> None:
        action = body.get("action")
        if action not in ("add", "remove", "unsubscribe"):
            raise HttpError(400, "Invalid action.")
        targets = parse_ids(body.get("target_list_ids"), "No lists given.")
        status = body.get("status") or "unconfirmed"
        if action == "add" and status not in _SUB_STATUSES:
            raise HttpError(400, "Invalid fields: status")
        now, sub_arg, list_arg = _now(), json.dumps(list(ids)), json.dumps(targets)
        scope = f"subscriber_id IN {_IN_IDS} AND list_id IN {_IN_IDS}"
        with self.db:
            if action == "remove":
                self.db.execute(f"DELETE FROM subscriber_lists WHERE {scope}", (sub_arg, list_arg))
            elif action == "unsubscribe":
                self.db.execute(
                    f"UPDATE subscriber_lists SET status = 'unsubscribed', updated_at = ? "
                    f"WHERE {scope}",
                    (now, sub_arg, list_arg),
                )
            else:
                conflict = "DO UPDATE SET status = excluded.status" if upsert else "DO NOTHING"
                self.db.execute(
                    "INSERT INTO subscriber_lists (subscriber_id, list_id, status, created_at, "
                    f"updated_at) SELECT s.id, l.id, ?, ?, ? FROM subscribers s, lists l "
                    f"WHERE s.id IN {_IN_IDS} AND l.id IN {_IN_IDS} "
                    f"ON CONFLICT (subscriber_id, list_id) {conflict}",
                    (status, now, now, sub_arg, list_arg),
                )

    def _subscribers_json(self, rows: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
        ids = sorted({int(r[0]) for r in rows})
        lists: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for m in self.db.execute(
            "SELECT sl.subscriber_id, l.*, sl.status, sl.created_at, sl.updated_at, sl.meta "
            f"FROM subscriber_lists sl JOIN lists l ON l.id = sl.list_id "
            f"WHERE sl.subscriber_id IN {_IN_IDS} ORDER BY l.id",
            (json.dumps(ids),),
        ):
            entry = self._list_json(m[1:11], counts=False)
            entry.update(
                subscription_status=m[11],
                subscription_created_at=m[12],
                subscription_updated_at=m[13],
                subscription_meta=json.loads(m[14]),
            )
            lists[int(m[0])].append(entry)
        keys = ("id", "uuid", "email", "name", "attribs", "status", "created_at", "updated_at")
        out = []
        for row in rows:
            sub = dict(zip(keys, row, strict=True))
            sub["attribs"] = json.loads(sub["attribs"])
            sub["lists"] = lists[int(row[0])]
            out.append(sub)
        return out
