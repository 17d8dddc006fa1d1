"""Database URLs as operators type them: one documented meaning for each spelling.

inboxops stores in SQLite or PostgreSQL, nothing else. What each spelling means
(docs/db.md keeps the same table):

================================  ============================================================
``/var/lib/inboxops/x.db``        a SQLite file (a plain path; ``~`` expands; relative to cwd)
``sqlite:///relative.db``         a SQLite file relative to the current directory
``sqlite:////abs/path.db``        a SQLite file at an absolute path
``postgresql://u@h/db``           PostgreSQL through psycopg 3 (also ``postgres://``,
                                  ``postgresql+psycopg://``)
``sqlite://``, ``:memory:``       refused: an in-memory database forgets everything at exit
``sqlite://relative.db``          refused: the name sits where a host goes (says what to type)
``sqlite:relative.db``            refused: did you mean ``sqlite:///relative.db``?
``mysql://``, ``http://``...      refused: names the two supported schemes
(empty)                           the default file; ``--db ''`` itself is a usage error
================================  ============================================================

The directory of an explicit SQLite file must exist (a typo must not create directories);
only the default data directory is created.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from inboxops.errors import ConfigError

SUPPORTED = (
    "use a SQLite file (sqlite:///path/to/inboxops.db, or just the path) "
    "or PostgreSQL (postgresql://user@host/dbname)"
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(//)?")
_PG = {"postgresql", "postgres", "postgresql+psycopg"}
_SQLITE = {"sqlite", "sqlite+pysqlite"}


@dataclass(frozen=True)
class DatabaseUrl:
    """A checked database location: the SQLAlchemy URL plus, for SQLite, the file."""

    url: URL
    sqlite_path: Path | None  # None for PostgreSQL

    @property
    def is_sqlite(self) -> bool:
        return self.sqlite_path is not None

    def safe(self) -> str:
        return self.url.render_as_string(hide_password=True)


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def parse_database_url(text: str) -> DatabaseUrl:
    """Check ``text`` against the table above; ConfigError (exit 2) says what to type instead."""
    text = text.strip()
    if not text:
        raise ConfigError(f"the database URL is empty; {SUPPORTED}")
    match = _SCHEME.match(text)
    if match is None or (len(match.group(1)) == 1 and text[1:2] == ":"):
        return _sqlite_file(Path(text).expanduser())  # a plain path (or a Windows drive)
    scheme = match.group(1).lower()
    if scheme in _SQLITE:
        return _sqlite(text, scheme, match.group(2) is not None)
    if scheme in _PG:
        if not match.group(2):
            raise ConfigError(f"database URL {safe_url(text)!r} lacks '//'; {SUPPORTED}")
        rest = text[match.end() :]
        try:
            url = make_url("postgresql+psycopg://" + rest)
        except ArgumentError:
            raise ConfigError(f"database URL is not valid; {SUPPORTED}") from None
        if not url.database:
            raise ConfigError(
                f"database URL {url.render_as_string(hide_password=True)} names no database; "
                "add one: postgresql://user@host/dbname"
            )
        return DatabaseUrl(url, None)
    if scheme.startswith("postgresql+"):
        raise ConfigError(
            f"database driver {scheme.partition('+')[2]!r} is not supported; "
            "write postgresql://... (inboxops uses psycopg 3)"
        )
    raise ConfigError(f"database scheme {scheme!r} is not supported; {SUPPORTED}")


def _sqlite(text: str, scheme: str, slashes: bool) -> DatabaseUrl:
    if not slashes:
        rest = text.split(":", 1)[1]
        raise ConfigError(
            f"{text!r} is not a SQLite URL; did you mean sqlite:///{rest} "
            "(relative to the current directory) or a plain path?"
        )
    rest = text.split("://", 1)[1]
    if rest in ("", "/", "/:memory:", ":memory:") or rest.startswith(("/:memory:", ":memory:")):
        raise ConfigError(
            "an in-memory SQLite database forgets everything when the command ends; "
            "give a file: sqlite:///path/to/inboxops.db"
        )
    if not rest.startswith("/"):
        name = rest.split("?", 1)[0]
        raise ConfigError(
            f"in {text!r} the file name stands where a host goes; write sqlite:///{name} "
            f"(relative) or sqlite:////absolute/path/{Path(name).name}"
        )
    path_text = rest[1:].split("?", 1)[0]
    return _sqlite_file(Path(path_text).expanduser())


def _sqlite_file(path: Path) -> DatabaseUrl:
    if not str(path) or path.name in ("", ".", ".."):
        raise ConfigError(f"{str(path)!r} is not a file name; {SUPPORTED}")
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; give a file, e.g. {path / 'inboxops.db'}")
    return DatabaseUrl(URL.create("sqlite", database=str(path)), path)
