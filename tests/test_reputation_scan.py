"""The C scanner (reputation/_scan.c) reads every line exactly as the Python loop does.

The scanner reads the common lines and hands every other one to the Python loop, so the two must
agree on everything: the records, their order, each counter and the malformed samples. These
tests hold them to that on whole generated fleet logs in every timestamp style, on real Postfix
lines cut, spliced and damaged at random, and at the seams between the two (a handed-over line
at a chunk's edge, a year turning on a line only Python reads).
"""

from __future__ import annotations

import os
import random
from dataclasses import astuple
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inboxops.demo.maillog import FleetLog
from inboxops.reputation import parse as parse_module
from inboxops.reputation.parse import ACCELERATED, PostfixLogParser
from tests.test_reputation_parse import RECIPE

REF = datetime(2026, 11, 20, tzinfo=UTC)
CHUNK: int = parse_module._SCAN_CHUNK

needs_scanner = pytest.mark.skipif(
    not ACCELERATED and not os.environ.get("CI"),
    reason="the C scanner was not built here (no C compiler); CI always builds it",
)


def both(lines: list[str], **kwargs: Any) -> tuple[list[Any], Any]:
    """The records and stats of the scanner, once they are known to equal the Python loop's."""
    out = []
    for accelerated in (True, False):
        parser = PostfixLogParser(**{"ref": REF, "accelerated": accelerated, **kwargs})
        records = list(parser.records(lines))
        out.append((records, parser.stats))
    (fast, fast_stats), (slow, slow_stats) = out
    assert fast_stats == slow_stats
    assert len(fast) == len(slow)
    for i, (a, b) in enumerate(zip(fast, slow, strict=True)):
        assert a == b, (i, a, b)
    return fast, fast_stats


def as_text(lines: list[str], size: int = 5000) -> list[str]:
    """``lines`` as blocks of whole lines, as the parallel reader hands them over."""
    blocks, current = [], ""
    for line in lines:
        current += line
        if len(current) >= size:
            blocks.append(current)
            current = ""
    return [*blocks, current]


def both_text(text: list[str], **kwargs: Any) -> tuple[list[Any], Any]:
    """Blocks of text through the scanner against their lines through the Python loop."""
    fast = PostfixLogParser(**{"ref": REF, **kwargs})
    records = list(fast.records_of_text(text))
    slow = PostfixLogParser(**{"ref": REF, "accelerated": False, **kwargs})
    lines = [line for block in text for line in block.splitlines(keepends=True)]
    expected = list(slow.records(lines))
    assert fast.stats == slow.stats
    assert len(records) == len(expected)
    for i, (a, b) in enumerate(zip(records, expected, strict=True)):
        assert a == b, (i, a, b)
    return records, fast.stats


def test_the_scanner_is_built_wherever_ci_runs() -> None:
    """The install builds it (setup.py); a CI run without it would test only the fallback."""
    if os.environ.get("CI"):
        assert ACCELERATED, "inboxops.reputation._scan did not build: is gcc installed?"
    elif not ACCELERATED:
        pytest.skip("the C scanner was not built here (no C compiler)")
    assert parse_module._scan is not None


@needs_scanner
@pytest.mark.parametrize("style", ["traditional", "rfc3339", "postlogd"])
def test_a_whole_fleet_log_in_each_style(style: str) -> None:
    lines = list(FleetLog(lines=40_000, seed=3, start=date(2026, 11, 2), days=6, style=style))
    records, stats = both(lines)
    assert both_text(as_text(lines, 100_000)) == (records, stats)
    assert stats.attempts > 4000
    assert stats.queue_events > 8000
    assert stats.inbound > 10_000
    assert stats.malformed >= 1  # the generator's broken lines
    assert len(records) == stats.attempts + stats.queue_events


@needs_scanner
def test_the_scanner_reads_the_common_lines_itself() -> None:
    """Not a pass-through: of a fleet log, the Python loop sees only the odd lines."""
    lines = list(FleetLog(lines=20_000, seed=5, start=date(2026, 11, 2), days=3))
    handed = _handed(lines)
    assert 0 < len(handed) < len(lines) // 50
    # bounce notices (the scanner leaves them to Python) and the generator's few broken lines
    assert sum("/bounce[" in h for h in handed) >= len(handed) - 5


def _delivery(i: int, second: int = 5) -> str:
    return (
        f"Nov 24 14:49:{second:02d} out05 postfix-out05/smtp[1]: A{i:09X}: to=<u{i}@Gmail.COM>, "
        "relay=gmail-smtp-in.l.google.com[142.250.27.26]:25, delay=0.5, "
        "delays=0/0.01/0.1/0.3, dsn=2.0.0, status=sent (250 2.0.0 OK)\n"
    )


@needs_scanner
@pytest.mark.parametrize("at", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK - 1])
def test_a_line_for_python_at_a_chunk_edge(at: int) -> None:
    lines = [_delivery(i, i % 60) for i in range(2 * CHUNK)]
    odd = 'Nov 24 14:49:59 out05 postfix-out05/smtp[1]: B1: to=<"a>b"@x.example>, relay=none, '
    lines[at] = odd + "delay=1, dsn=4.4.1, status=deferred (connect to x.example: refused)\n"
    records, stats = both(lines)
    assert both_text(as_text(lines)) == (records, stats)
    assert stats.attempts == 2 * CHUNK - 1
    assert stats.malformed == 1  # "B1" is too short an id
    assert all(r[6].endswith("@gmail.com") for r in records)


@needs_scanner
def test_the_year_turns_on_a_line_only_python_reads() -> None:
    """A non-ASCII line (Python's) carries the first January stamp: the lines after it, read
    by the scanner again, must be in the new year."""
    dec = _delivery(1).replace("Nov 24", "Dec 31")
    jan_odd = _delivery(2).replace("Nov 24", "Jan  1").replace("OK)", "OK é)")
    jan = _delivery(3).replace("Nov 24", "Jan  1")
    lines, ref = [dec, jan_odd, jan, dec, jan], datetime(2027, 1, 2, tzinfo=UTC)
    records, stats = both(lines, ref=ref)
    assert both_text(["".join(lines)], ref=ref) == (records, stats)
    years = [datetime.fromtimestamp(r[1], UTC).year for r in records]
    assert years == [2026, 2027, 2027, 2026, 2027]


@needs_scanner
def test_iso_stamps_with_fractions_and_zones() -> None:
    body = _delivery(7).split(" ", 3)[3]
    stamps = [
        "2026-11-24T14:49:05.123456+02:00",
        "2026-11-24T14:49:05Z",
        "2026-11-24T14:49:05+0100",
        "2026-11-24T14:49:05",
        "2026-11-24T14:49:99Z",  # a broken second: malformed
        "2026-11-24 14:49:05Z",  # not RFC 3339: the host becomes the program
    ]
    records, stats = both([f"{s} {body}" for s in stamps])
    assert len(records) == 4
    assert stats.malformed >= 1


REAL = RECIPE.splitlines(keepends=True) + list(
    FleetLog(lines=3000, seed=11, start=date(2026, 11, 2), days=1)
)
_EDITS = st.text(
    alphabet=st.sampled_from(list(" \t\r\n\x00\x1c:<>[](),=@.-/Zé\u2028") + list("0aAz9")),
    max_size=6,
)


@needs_scanner
@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(REAL) - 1), st.integers(0, 400), _EDITS), max_size=8))
def test_damaged_real_lines_are_read_alike(edits: list[tuple[int, int, str]]) -> None:
    """Real lines with characters inserted or cut anywhere: whatever each path makes of them,
    it is the same."""
    picked = []
    for index, cut, junk in edits:
        line = REAL[index]
        picked.append(line[:cut] + junk + line[cut + len(junk) // 2 :])
        picked.append(REAL[(index + 1) % len(REAL)])
    both(picked)
    both_text(as_text(picked, 300))


@needs_scanner
@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=12))
def test_arbitrary_text_is_read_alike(lines: list[str]) -> None:
    both(lines)
    both_text(lines)  # each string a block: any line ends, or none


@needs_scanner
def test_blocks_are_cut_where_splitlines_cuts_them() -> None:
    """Every line end str.splitlines knows, in ASCII blocks and in one that is not."""
    line = _delivery(1)
    ends = ["\n", "\r\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", ""]
    ascii_block = "".join(line[:-1] + end for end in ends)
    records, stats = both_text([ascii_block, ascii_block.replace("OK", "OK \u2028 é")])
    assert stats.lines == len(ends) + 2 * len(ends)  # \u2028 cuts each line of the second
    assert stats.attempts == len(records) == 3  # ")\n", ")\r\n", and ")" at the block's end


_PRE = "Nov 24 14:49:05 out05 postfix-out05/"
_TAIL = "relay=mx.example[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=4.7.0, status=deferred ("


def d(
    old: str = "", new: str = "", *, qid: str = "ABCDE", end: str = "x)\n", at: str = _PRE
) -> str:
    """A delivery line with one change to its tail."""
    tail = _TAIL.replace(old, new) if old else _TAIL
    return f"{at}smtp[1]: {qid}: to=<a@b.example>, {tail}{end}"


def q(text: str) -> str:
    return f"{_PRE}qmgr[2]: ABCDE: {text}\n"


EDGES = {
    # line -> how it must come out: "attempt", "queue", "other", "malformed", "inbound"
    d(at=_PRE.replace(":05 ", ":60 ")): "attempt",
    d(at=_PRE.replace(":05 ", ":61 ")): "malformed",
    d(qid="A" * 25): "attempt",
    d(qid="A" * 26): "malformed",
    d("4.7.0", "4.7.1234"): "malformed",
    d("4.7.0", "4.1234.0"): "malformed",
    d("4.7.0", "3.7.0"): "malformed",
    d("deferred", "SOFTBOUNCE"): "attempt",
    d("deferred", "deliverable"): "other",
    d("relay=", "orig_to=<o@c.example>, relay=").replace(":25, ", ":25, conn_use=2, "): "attempt",
    d(":25, ", ":25, conn_use=, "): "malformed",
    d().replace(">, relay=", ">;;relay="): "malformed",
    d("relay=", "orig_to=<o@c.example>;;relay="): "malformed",
    d("delays=0/0/0/1, ", ""): "attempt",
    d("]:25", "]:x"): "malformed",
    d(end="x)\r\n"): "attempt",
    d(end="x)"): "attempt",
    d(end="x) \n"): "malformed",
    d(end="r" * 999 + ")\n"): "attempt",
    d(end="r" * 1001 + ")\n"): "attempt",
    d(end="x: from=<y>)\n").replace("smtp[1]", "qmgr[2]"): "malformed",
    d(end="suspended)\n").replace("smtp[1]", "qmgr[2]"): "attempt",
    q("from=<a@b.example>, size=12, nrcpt=3 (queue active)"): "queue",
    q(f"from=<a@b.example>, size={'9' * 19}, nrcpt=3 (queue active)"): "queue",
    q("from=<a@b.example>, size=12, nrcpt=3 (queue)"): "malformed",
    q("from=<a@b.example>, size=12, nrcpt=3 (queue ACTIVE)"): "malformed",
    q("from=<a@b.example>, status=expired, returned to sender\r"): "queue",
    q("from=<>, status=expired, returned to sender x"): "malformed",
    q("removed"): "queue",
    q("removed later"): "other",
    _PRE + "bounce[3]: ABCDE: sender non-delivery notification: FGHIJ\n": "queue",
    _PRE + "bounce[3]: ABCDE: sender delivery status notification\n": "other",
    _PRE + "bounce[3]: ABCDE: sender non-delivery notification: FG\n": "malformed",
    _PRE + "smtp[1]:\n": "other",
    _PRE + "smtpd[4]: connect from x[192.0.2.9]\n": "inbound",
    _PRE.replace(" out05 ", "\x1cout05\x1c") + "smtpd[4]: connect from x[192.0.2.9]\n": "inbound",
}
_SLOT = {"attempt": 1, "queue": 2, "inbound": 3, "other": 4, "malformed": 6}


@needs_scanner
@pytest.mark.parametrize("line", list(EDGES), ids=range(len(EDGES)))
def test_edge_lines_each_on_its_own(line: str) -> None:
    """The boundaries of every rule the scanner applies itself: the scanner must either read
    the line exactly as Python does or leave it to Python."""
    _, stats = both([line])
    counters = astuple(stats)
    assert counters[_SLOT[EDGES[line]]] == 1, stats


def _handed(lines: list[str]) -> list[str]:
    """The lines the scanner hands to the Python loop."""
    parser = PostfixLogParser(ref=REF)
    handed: list[str] = []
    loop = parser._loop

    def python_loop(chunk: Any, clock: Any, relays: Any) -> Any:
        chunk = list(chunk)
        handed.extend(chunk)
        return loop(chunk, clock, relays)

    parser._loop = python_loop  # type: ignore[method-assign]  # to see what it is handed
    list(parser.records(lines))
    return handed


@needs_scanner
def test_the_scanner_reads_the_edges_of_its_own_rules_itself() -> None:
    """Leaving a line to Python is always safe, so only this shows a rule drawn too tight: a
    leap second, the longest queue id, SOFTBOUNCE, orig_to and conn_use, a missing delays=,
    CRLF or no line end, a long reply, qmgr's own deferral, expiry, removal."""
    mine = [line for line, outcome in EDGES.items() if outcome in ("attempt", "queue")]
    assert len(mine) == 15
    python = [line for line in mine if "/bounce[" in line or "9" * 19 in line]
    assert _handed(mine) == python


@needs_scanner
@pytest.mark.parametrize(
    ("python_only", "years"),
    [
        # a non-ASCII reply: the scanner hands it over before reading its stamp
        ("non_ascii", [2026, 2027, 2027, 2028, 2028]),
        # ASCII, but the program ends the line: the same, in a block the scanner reads as text
        ("no_text", [2026, 2027, 2028]),
    ],
)
def test_a_minute_read_again_after_python_turned_the_year(
    python_only: str, years: list[int]
) -> None:
    """The scanner remembers the last minute it read; a line the Python loop reads may turn
    the year (and clear the clock's minutes), after which the same minute is a year later."""

    def odd(i: int, stamp: str) -> str:
        line = _delivery(i).replace("Nov 24 14:49:05", stamp)
        if python_only == "non_ascii":
            return line.replace("OK)", "é)")
        return line.split(": A", 1)[0] + ":\n"

    lines = [
        _delivery(1).replace("Nov 24 14:49:05", "Dec 31 23:59:59"),
        _delivery(2).replace("Nov 24 14:49:05", "Jan  1 00:00:01"),
        odd(3, "Mar  1 00:00:00"),
        odd(4, "Jan  1 00:01:03"),
        _delivery(5).replace("Nov 24 14:49:05", "Jan  1 00:00:04"),
    ]
    ref = datetime(2026, 12, 31, tzinfo=UTC)
    records, stats = both(lines, ref=ref)
    assert both_text(["".join(lines)], ref=ref) == (records, stats)  # and read as one block
    assert [datetime.fromtimestamp(r[1], UTC).year for r in records] == years


@needs_scanner
def test_syslog_names_and_hosts_that_are_prefixes_of_each_other() -> None:
    """The scanner keeps recent program tokens and the last host by their text: one that is
    a prefix of another (a pid a digit shorter, a name without its colon) is another name."""
    body = _delivery(1).split(" ", 5)[5]
    lines = []
    for pid in range(4000):
        token = f"postfix-out05/smtp[{pid}]:"
        for cut in (0, 1, 2):
            host = "out05" if pid % 2 else "out055"
            lines.append(f"Nov 24 14:49:05 {host} {token[: len(token) - cut]} {body}")
    random.Random(5).shuffle(lines)
    records, stats = both(lines)
    assert stats.attempts == len(records) == 4000
    assert all(r[2] == r[-1].split()[3] for r in records)  # each its own line's host
    assert {r[2] for r in records} == {"out05", "out055"}


@needs_scanner
def test_hostile_lines_are_read_alike_and_nothing_is_lost() -> None:
    """Megabyte addresses and replies, a line of NULs, a 4 MB line of garbage, a truncated last
    line: both paths count the same, cap the reply, and read the good line after them."""
    pre = "Nov 24 14:49:05 out05 postfix-out05/smtp[1]: ABCDE: to=<"
    lines = [
        pre + "a" * 2_000_000 + "@x.example>, relay=none, delay=1, dsn=4.4.1, "
        "status=deferred (" + "r" * 1_000_000 + ")\n",
        "\x00" * 10_000 + "\n",
        "x" * 4_000_000 + "\n",
        _delivery(2),
        "Nov 24 14:49:05 out05 postfix-out05/smtp[1]: ABCDE: to=<b@x.exa",
    ]
    records, stats = both(lines)
    assert both_text(["".join(lines)]) == (records, stats)
    assert [len(r[14]) for r in records] == [1000, len("250 2.0.0 OK")]
    assert stats.malformed == 3
    assert stats.non_postfix == 0
