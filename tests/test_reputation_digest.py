"""The C digest (``_digest.c``) gives exactly the definition's keys (``collect.digest64_py``).

Stored attempts are keyed by these digests for ever: a rerun recognises a line by its key, so
a key that changed would count the line twice. BLAKE2b works in 128-byte blocks with a special
last block, so every length around one, two and three blocks is checked, then random text of
every kind a log can hold (non-ASCII, NUL, lone surrogates from undecodable bytes).
"""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inboxops.reputation import collect
from inboxops.reputation.collect import digest64_py

try:
    from inboxops.reputation._digest import digest64 as fast
except ImportError:  # not built here: the module-level test says whether that may be
    fast = None  # type: ignore[assignment]

needs_fast = pytest.mark.skipif(fast is None, reason="the C digest was not built here")


def test_the_digest_is_built_wherever_ci_runs() -> None:
    """The install builds it (setup.py); a CI run without it would test only hashlib."""
    if os.environ.get("CI"):
        assert fast is not None, "inboxops.reputation._digest did not build: is gcc installed?"
    elif fast is None:
        pytest.skip("the C digest was not built here (no C compiler)")
    assert collect.digest64 is fast  # the store uses it


def test_the_definition_is_blake2b_of_utf8_read_big_endian_signed() -> None:
    line = "Nov  4 10:00:01 out05 postfix-out05/smtp[9]: ABCDEF12345: to=<a@b.example>"
    raw = hashlib.blake2b(line.encode(), digest_size=8).digest()
    assert digest64_py(line) == int.from_bytes(raw, "big", signed=True)
    assert collect.digest64(line) == digest64_py(line)


@needs_fast
@pytest.mark.parametrize("char", ["a", "é", "€", "\U0001f600", "\x00", "\udcff"])
def test_every_length_around_the_blocks(char: str) -> None:
    for n in range(3 * 128 + 3):
        text = char * n
        assert fast(text) == digest64_py(text), (char, n)


@needs_fast
def test_long_text_and_both_signs() -> None:
    texts = [f"{n} " * n for n in range(0, 5000, 97)]
    values = [fast(t) for t in texts]
    assert values == [digest64_py(t) for t in texts]
    assert min(values) < 0 < max(values)


@needs_fast
@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(codec=None, exclude_categories=()), max_size=600))
def test_random_text(text: str) -> None:
    assert fast(text) == digest64_py(text)


@needs_fast
def test_anything_but_str_is_refused() -> None:
    for value in (b"bytes", 3, None):
        with pytest.raises(TypeError):
            fast(value)  # type: ignore[arg-type]
