"""Pure helpers of the batched IMAP fetch: UID sets, batch plans, FETCH responses.

A backfill of 5,000 reports used to cost three round trips per message (FETCH, STORE, MOVE).
Reading and flagging by UID *sets* makes it a few per batch, and knowing each message's
``RFC822.SIZE`` first bounds a batch by bytes as well as by count, so memory stays bounded
whatever the mailbox holds. No I/O here: values in, values out (``tests/test_fetch.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

MiB = 1024 * 1024

_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


@dataclass(frozen=True)
class BatchLimits:
    """How much one ``UID FETCH (BODY.PEEK[])`` may bring back.

    ``messages`` keeps the per-message work between two flag updates short (a crash redoes at
    most one batch, as known reports); ``bytes`` bounds memory, since the whole answer is held
    until it is parsed. A single message larger than ``bytes`` is read alone.
    ``max_set_chars`` keeps a command line short enough for servers that limit it (a set of
    scattered UIDs is long; Dovecot accepts 64 KiB, some servers far less).
    """

    messages: int = 500
    bytes: int = 16 * MiB
    size_window: int = 5000  # UIDs whose sizes one round trip asks for
    max_set_chars: int = 8000


def _runs(uids: Iterable[int]) -> Iterator[str]:
    """Runs of consecutive UIDs as set items: ``"1:3"``, ``"7"``."""
    ordered = sorted(set(uids))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        yield str(ordered[i]) if i == j else f"{ordered[i]}:{ordered[j]}"
        i = j + 1


def uid_set(uids: Iterable[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``"1:3,7,9:10"`` (RFC 3501 sequence-set syntax)."""
    return ",".join(_runs(uids))


def uid_sets(uids: Iterable[int], max_chars: int) -> Iterator[str]:
    """``uid_set`` split into as few sets as keep each within ``max_chars`` characters."""
    chunk: list[str] = []
    length = 0
    for item in _runs(uids):
        if chunk and length + 1 + len(item) > max_chars:
            yield ",".join(chunk)
            chunk, length = [], 0
        length += len(item) + (1 if chunk else 0)
        chunk.append(item)
    if chunk:
        yield ",".join(chunk)


def plan_batch(pending: Sequence[int], sizes: Mapping[int, int], limits: BatchLimits) -> list[int]:
    """The longest prefix of ``pending`` within both bounds; never empty if ``pending`` is not.

    Every UID looked at must have a size (the caller asks for sizes first).
    """
    batch: list[int] = []
    total = 0
    for uid in pending:
        size = sizes[uid]
        if batch and (len(batch) >= limits.messages or total + size > limits.bytes):
            break
        batch.append(uid)
        total += size
    return batch


def parse_sizes(data: Iterable[object]) -> dict[int, int]:
    """UID -> RFC822.SIZE from a ``UID FETCH ... (RFC822.SIZE)`` answer.

    Lines without both (an unsolicited ``FETCH (FLAGS ...)`` from another client) are skipped.
    """
    out: dict[int, int] = {}
    for item in data:
        line = item[0] if isinstance(item, tuple) else item
        if not isinstance(line, bytes):
            continue
        uid, size = _UID.search(line), _SIZE.search(line)
        if uid is not None and size is not None:
            out[int(uid.group(1))] = int(size.group(1))
    return out


def parse_bodies(data: Sequence[object]) -> dict[int, bytes]:
    """UID -> message bytes from a ``UID FETCH ... (BODY.PEEK[])`` answer as imaplib gives it:
    ``(b'1 (UID 5 BODY[] {123}', b'<message>')`` then ``b')'``. Some servers send the UID
    after the literal (``b' UID 5)'``), so the line after it is read when the first has none.
    A message expunged meanwhile is simply absent.
    """
    out: dict[int, bytes] = {}
    for i, item in enumerate(data):
        if not (isinstance(item, tuple) and len(item) == 2):
            continue
        meta, body = item
        if not (isinstance(meta, bytes) and isinstance(body, bytes)):
            continue
        match = _UID.search(meta)
        if match is None and i + 1 < len(data):
            tail = data[i + 1]
            if isinstance(tail, bytes):
                match = _UID.search(tail)
        if match is not None:
            out[int(match.group(1))] = body
    return out
