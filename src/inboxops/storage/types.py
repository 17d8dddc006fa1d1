"""Column types whose bound values pass :mod:`inboxops.storage.text`'s cleaning.

Apart from the cleaning functions so that the parsers, which clean their own values, never
import SQLAlchemy.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from inboxops.storage.text import clean_json, clean_text


class CleanString(TypeDecorator[str]):
    """``String(n)`` whose bound values pass :func:`clean_text`."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return clean_text(value) if isinstance(value, str) else value


class CleanText(TypeDecorator[str]):
    """``Text`` whose bound values pass :func:`clean_text`."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return clean_text(value) if isinstance(value, str) else value


class CleanJSON(TypeDecorator[Any]):
    """``JSON`` whose strings (at any depth) pass :func:`clean_text`."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return clean_json(value)
