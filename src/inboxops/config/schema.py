"""The config loader's machinery: the settings dataclasses *are* the schema.

Every section of ``inboxops.toml`` is a frozen dataclass; a field is a key, a nested dataclass
is a sub-table, ``tuple[Dataclass, ...]`` an array of tables. :func:`load_section` walks a
parsed TOML table against that schema once, at start:

* an unknown key or section is an error naming the file and the closest valid name ("did you
  mean own_ips?"): a misspelt ``own_ip`` must not silently switch an alert off;
* every value is checked for its declared type without coercion (``"no"`` is not a boolean,
  ``"1.2.3.4"`` is not a list), and the message names ``[section] key``, the value and what was
  expected;
* ``INBOXOPS_*`` environment variables declared on a field override the file, converted from
  text with the same checks;
* a :class:`Secret` field may instead be read from ``<key>_file`` (or ``INBOXOPS_<NAME>_FILE``),
  the systemd/Docker credentials convention.

New capabilities add a dataclass and get all of this for free; nothing here knows DMARC.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field
from pathlib import Path
from typing import Any, Union

from inboxops.errors import ConfigError

ENV_PREFIX = "INBOXOPS_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class Secret:
    """A string that never prints itself; call :meth:`reveal` at the one place it is used."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def setting(
    default: Any = MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    env: str | None = None,
    choices: tuple[str, ...] = (),
    minimum: float | None = None,
    maximum: float | None = None,
    parse: Callable[[str], Any] | None = None,
    expect: str = "",
    lower: bool = False,
) -> Any:
    """Declare one key: its default, env name (without the prefix) and value rules.

    ``parse`` converts each string item (an IP network, a nameserver) and raises ValueError with
    a short reason; ``expect`` says in words what a good value looks like for the message.
    """
    meta = {
        "env": env,
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "parse": parse,
        "expect": expect,
        "lower": lower,
    }
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def internal(default: Any = None) -> Any:
    """A field that is not a config key (filled in by the loader itself)."""
    return field(default=default, metadata={"internal": True})


@dataclass(frozen=True)
class Where:
    """Where a value came from, for messages: a key in a file, or an environment variable."""

    file: Path | None
    section: str
    key: str
    env: str | None = None

    def __str__(self) -> str:
        if self.env:
            return self.env
        place = f" in {self.file}" if self.file else ""
        return f"[{self.section}] {self.key}{place}"


def _bad(where: Where, value: Any, expected: str, *, item: bool = False) -> ConfigError:
    shown = value if where.env else _toml_repr(value)
    if where.env:
        what = f"{where} contains {shown!r}" if item else f"{where}={shown!r}"
        return ConfigError(f"{what}: expected {expected}")
    sep = " contains " if item else " = "
    head = f"[{where.section}] {where.key}{sep}{shown}"
    place = f" in {where.file}" if where.file else ""
    return ConfigError(f"{head}{place}: expected {expected}")


def _toml_repr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return (
            "["
            + ", ".join(_toml_repr(v) for v in value[:5])
            + (", ...]" if len(value) > 5 else "]")
        )
    if isinstance(value, dict):
        return "{...}"
    return repr(value)


def fields_of(cls: type) -> list[tuple[Field[Any], Any]]:
    """The config keys of a section dataclass with their resolved types."""
    hints = typing.get_type_hints(cls)
    return [
        (f, hints[f.name])
        for f in dataclasses.fields(cls)
        if f.init and not f.metadata.get("internal")
    ]


def is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def section_array_item(tp: Any) -> type | None:
    """``tuple[Dataclass, ...]`` (an array of tables) -> the dataclass, else None."""
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis and is_section(args[0]):
            return typing.cast(type, args[0])
    return None


def _unoptional(tp: Any) -> Any:
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _is_secret(tp: Any) -> bool:
    tp = _unoptional(tp)
    return tp is Secret or (typing.get_origin(tp) is tuple and typing.get_args(tp)[0] is Secret)


def join(section: str, key: str) -> str:
    """``dmarc`` + ``imap`` -> ``dmarc.imap``; the top level has no name."""
    return f"{section}.{key}" if section else key


def _suggest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def load_section(
    cls: type, table: Mapping[str, Any], *, section: str, file: Path | None
) -> dict[str, Any]:
    """Values of section ``cls`` found in ``table`` (a parsed TOML table), checked.

    Returns only the keys present, so defaults stay the dataclass's own; raises ConfigError on
    the first unknown key or bad value.
    """
    known = fields_of(cls)
    by_name = {f.name: (f, tp) for f, tp in known}
    valid = list(by_name) + [f"{f.name}_file" for f, tp in known if _is_secret(tp)]
    values: dict[str, Any] = {}
    for key, raw in table.items():
        where = Where(file, section, key)
        if key.endswith("_file") and key[: -len("_file")] in by_name:
            f, tp = by_name[key[: -len("_file")]]
            if _is_secret(tp) and typing.get_origin(_unoptional(tp)) is not tuple:
                if f.name in table:
                    raise ConfigError(f"{where}: give either {f.name} or {key}, not both")
                if not isinstance(raw, str):
                    raise _bad(where, raw, "a file path (a string)")
                values[f.name] = Secret(read_secret_file(raw, str(where)))
                continue
        if key not in by_name:
            kind = "section" if isinstance(raw, dict) or not section else "key"
            shown = f"[{join(section, key)}]" if kind == "section" else f"{key} in [{section}]"
            place = f" in {file}" if file else ""
            hint = _suggest(key, valid)
            if kind == "section" and hint:
                hint = hint.replace("mean ", f"mean [{join(section, '')}").replace("?", "]?")
            raise ConfigError(f"unknown {kind} {shown}{place}{hint}")
        f, tp = by_name[key]
        values[key] = coerce(raw, tp, f, where)
    return values


def build(cls: type, table: Mapping[str, Any], *, section: str, file: Path | None) -> Any:
    """An instance of section ``cls`` from ``table``; sub-sections are built recursively."""
    values = load_section(cls, table, section=section, file=file)
    for f, tp in fields_of(cls):
        if is_section(tp) and f.name not in values:
            values[f.name] = build(tp, {}, section=join(section, f.name), file=file)
    return cls(**values)


def coerce(raw: Any, tp: Any, f: Field[Any], where: Where) -> Any:
    """A TOML value checked against its declared type (no silent coercion)."""
    tp = _unoptional(tp)
    meta = f.metadata
    if is_section(tp):
        name = join(where.section, where.key)
        if not isinstance(raw, dict):
            place = f" in {where.file}" if where.file else ""
            raise ConfigError(f"{name} must be a table ([{name}]){place}")
        return build(tp, raw, section=name, file=where.file)
    item_cls = section_array_item(tp)
    if item_cls is not None:
        if not isinstance(raw, list) or not all(isinstance(v, dict) for v in raw):
            name = join(where.section, where.key)
            raise _bad(where, raw, f"an array of tables ([[{name}]])")
        return tuple(
            build(item_cls, v, section=f"{join(where.section, where.key)}[{i}]", file=where.file)
            for i, v in enumerate(raw)
        )
    origin = typing.get_origin(tp)
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if not isinstance(raw, list):
            example = meta.get("expect") or f"a list, e.g. [{_toml_repr(raw)}]"
            raise _bad(where, raw, example)
        return tuple(_scalar(v, item, meta, where, in_list=True) for v in raw)
    if origin is dict:
        _, value_tp = typing.get_args(tp)
        if not isinstance(raw, dict):
            raise _bad(where, raw, f"a table ([{join(where.section, where.key)}])")
        out: dict[str, Any] = {}
        for k, v in raw.items():
            sub = Where(where.file, join(where.section, where.key), str(k))
            if typing.get_origin(value_tp) is tuple:
                if not isinstance(v, list):
                    raise _bad(sub, v, "a list of strings")
                item = typing.get_args(value_tp)[0]
                out[str(k)] = tuple(_scalar(x, item, meta, sub, in_list=True) for x in v)
            else:
                out[str(k)] = _scalar(v, value_tp, meta, sub)
        return out
    return _scalar(raw, tp, meta, where)


def _scalar(
    raw: Any, tp: Any, meta: Mapping[str, Any], where: Where, *, in_list: bool = False
) -> Any:
    parse = meta.get("parse")
    expect = meta.get("expect")
    if tp is bool:
        if not isinstance(raw, bool):
            raise _bad(where, raw, "true or false")
        return raw
    if tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _bad(where, raw, expect or "a whole number")
        value: Any = raw
    elif tp is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise _bad(where, raw, expect or "a number")
        _check_range(raw, meta, where)
        return float(raw)
    else:
        if not isinstance(raw, str):
            what = "strings" if in_list else "a string"
            raise _bad(where, raw, what if in_list else expect or what, item=in_list)
        if tp is Secret:
            return Secret(raw)
        value = raw.lower() if meta.get("lower") else raw
        if parse is not None:
            try:
                return parse(value)
            except ValueError as exc:
                reason = str(exc) if in_list else expect or str(exc)
                raise _bad(where, raw, reason, item=in_list) from None
    _check_range(value, meta, where)
    return value


def _check_range(value: Any, meta: Mapping[str, Any], where: Where) -> None:
    choices = meta.get("choices") or ()
    if choices and value not in choices:
        raise _bad(where, value, "one of " + ", ".join(choices))
    low, high = meta.get("minimum"), meta.get("maximum")
    if low is not None and value < low:
        raise _bad(where, value, f"at least {low:g}" if high is None else f"{low:g} to {high:g}")
    if high is not None and value > high:
        raise _bad(where, value, f"at most {high:g}" if low is None else f"{low:g} to {high:g}")


# -- environment ------------------------------------------------------------------------------


def env_names(cls: type, prefix: str = "") -> list[tuple[str, str]]:
    """(``INBOXOPS_*`` name, ``[section].key``) for every field with an environment override."""
    out: list[tuple[str, str]] = []
    for f, tp in fields_of(cls):
        path = f"{prefix}.{f.name}" if prefix else f.name
        if is_section(tp):
            out.extend(env_names(tp, path))
        elif f.metadata.get("env"):
            section, _, key = path.rpartition(".")
            out.append((ENV_PREFIX + f.metadata["env"], f"[{section}].{key}"))
            if _is_secret(tp) and typing.get_origin(_unoptional(tp)) is not tuple:
                out.append((ENV_PREFIX + f.metadata["env"] + "_FILE", f"[{section}].{key}_file"))
    return out


def apply_env(obj: Any, env: Mapping[str, str]) -> Any:
    """``obj`` with every declared ``INBOXOPS_*`` override applied (empty values are unset)."""
    changes: dict[str, Any] = {}
    for f, tp in fields_of(type(obj)):
        current = getattr(obj, f.name)
        if is_section(tp):
            updated = apply_env(current, env)
            if updated is not current:
                changes[f.name] = updated
            continue
        name = f.metadata.get("env")
        if not name:
            continue
        full = ENV_PREFIX + name
        text = env.get(full) or None
        file_name = env.get(full + "_FILE") or None
        if text is None and file_name is not None and _is_secret(tp):
            changes[f.name] = Secret(read_secret_file(file_name, full + "_FILE"))
        elif text is not None:
            changes[f.name] = from_text(text, tp, f, Where(None, "", f.name, env=full))
    return dataclasses.replace(obj, **changes) if changes else obj


def from_text(text: str, tp: Any, f: Field[Any], where: Where) -> Any:
    """An environment value (always text) converted to the field's type, with the same checks."""
    tp = _unoptional(tp)
    meta = f.metadata
    if typing.get_origin(tp) is tuple:
        item = typing.get_args(tp)[0]
        parts = [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]
        return tuple(_text_scalar(p, item, meta, where, in_list=True) for p in parts)
    return _text_scalar(text.strip(), tp, meta, where)


def _text_scalar(
    text: str, tp: Any, meta: Mapping[str, Any], where: Where, *, in_list: bool = False
) -> Any:
    if tp is bool:
        word = text.lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise _bad(where, text, "true or false (also yes/no, 1/0, on/off)")
    if tp is int:
        try:
            value: Any = int(text)
        except ValueError:
            raise _bad(where, text, meta.get("expect") or "a whole number") from None
        _check_range(value, meta, where)
        return value
    if tp is float:
        try:
            value = float(text)
        except ValueError:
            raise _bad(where, text, meta.get("expect") or "a number") from None
        _check_range(value, meta, where)
        return value
    return _scalar(text, tp, meta, where, in_list=in_list)


def read_secret_file(path_text: str, origin: str) -> str:
    path = Path(path_text).expanduser()
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{origin}: cannot read {path} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{origin}: {path} is not UTF-8 text") from None


# -- showing ----------------------------------------------------------------------------------

MASK = "********"


def describe(obj: Any) -> dict[str, Any]:
    """A section as plain JSON-able values, secrets masked: what ``config show`` prints."""
    out: dict[str, Any] = {}
    for f, _tp in fields_of(type(obj)):
        out[f.name] = _plain(getattr(obj, f.name))
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return describe(value)
    if isinstance(value, Secret):
        return MASK if value else ""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def keys(cls: type, prefix: str = "") -> list[str]:
    """Every ``[section].key`` of the schema (array-of-table items as ``[section.name].key``)."""
    out: list[str] = []
    for f, tp in fields_of(cls):
        path = f"{prefix}.{f.name}" if prefix else f.name
        item = section_array_item(tp)
        if is_section(tp):
            out.extend(keys(tp, path))
        elif item is not None:
            out.extend(keys(item, path))
        else:
            section, _, key = path.rpartition(".")
            out.append(f"[{section}].{key}")
    return out
