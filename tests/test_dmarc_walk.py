"""The C walk of a ``<record>`` (dmarc/_walk.c) against records.record_values, its reference.

The walk may decline a record (None: Python reads it) but never read one differently. Every
test here holds the two to that, record by record, over the real corpus, generated reports,
crafted edge cases and random records; and checks that the walk does take the common records,
so that a walk which declined everything could not pass."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from inboxops.config import Limits
from inboxops.demo.generate import generate_large_report, generate_reports
from inboxops.dmarc import parse as parse_module
from inboxops.dmarc import records as records_module
from inboxops.dmarc.parse import ACCELERATED, PARSER_OPTIONS, AggregateParser
from inboxops.dmarc.records import fast_reader, record_values
from inboxops.dmarc.unpack import Unpacker

needs_walk = pytest.mark.skipif(
    not ACCELERATED and not os.environ.get("CI"),
    reason="the C walk was not built here (no C compiler); CI always builds it",
)

# The parser's own settings (parse.AggregateParser): what the walk meets in a real import.
PARSER = etree.XMLParser(**PARSER_OPTIONS)


def walk(el: Any) -> Any:
    assert parse_module.FAST_RECORD is not None
    return parse_module.FAST_RECORD(el)


# CDATA sections kept as nodes of their own: a text lxml joins from several nodes.
PIECES = etree.XMLParser(recover=True, resolve_entities=False, no_network=True, strip_cdata=False)


def compare(xml: bytes, parser: etree.XMLParser = PARSER) -> tuple[int, int]:
    """(records, records the walk took) of a document; fails on the first record it reads
    differently from record_values."""
    root = etree.fromstring(xml, parser)
    if root is None:
        return 0, 0
    seen = taken = 0
    for el in root.iter("{*}record"):
        seen += 1
        fast = walk(el)
        if fast is not None:
            taken += 1
            assert fast == record_values(el), etree.tostring(el)
    return seen, taken


def record(body: str, ns: str = "") -> bytes:
    return f"<feedback{ns}><record>{body}</record></feedback>".encode()


ROW = (
    "<row><source_ip>192.0.2.1</source_ip><count>3</count><policy_evaluated>"
    "<disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>"
)
IDS = "<identifiers><header_from>example.com</header_from></identifiers>"
AUTH = (
    "<auth_results><dkim><domain>example.com</domain><selector>s1</selector><result>pass"
    "</result></dkim><spf><domain>example.com</domain><result>fail</result></spf></auth_results>"
)


def test_the_walk_is_built_wherever_ci_runs() -> None:
    """The install builds it (setup.py); a CI run without it would test only the fallback."""
    if os.environ.get("CI"):
        assert ACCELERATED, "inboxops.dmarc._walk did not build: is gcc installed?"
    elif not ACCELERATED:
        pytest.skip("the C walk was not built here (no C compiler)")
    assert records_module._walk is not None


def corpus_payloads(corpus: Path) -> list[tuple[str, bytes]]:
    """Every XML payload of the corpus (inside .gz, .zip and .eml too)."""
    out = []
    limits = Limits()
    for path in sorted(p for p in corpus.rglob("*") if p.is_file()):
        with path.open("rb") as fh:
            try:
                out += [
                    (f"{path}:{p.name}", p.stream.read())
                    for p in Unpacker(limits).payloads(fh, str(path))
                    if p.kind == "xml" and p.stream is not None
                ]
            except Exception:  # noqa: S112 - refused files are test_hostile's business
                continue
    return out


@needs_walk
def test_every_record_of_the_real_corpus_reads_the_same(corpus: Path) -> None:
    seen = taken = 0
    for _name, xml in corpus_payloads(corpus):
        s, t = compare(xml)
        seen, taken = seen + s, taken + t
    assert seen > 1000
    assert taken >= 0.95 * seen  # the walk is what reads a real report


@needs_walk
def test_generated_reports_read_the_same(tmp_path: Path) -> None:
    generate_reports(tmp_path / "small", count=60, seed=5, compress="none")
    generate_large_report(tmp_path / "large.xml", records=3000, seed=5)
    seen = taken = 0
    for path in sorted(tmp_path.rglob("*.xml")):
        s, t = compare(path.read_bytes())
        seen, taken = seen + s, taken + t
    assert seen > 3000
    assert taken == seen


# (body, whether the walk must take it): what it takes it must read exactly as Python does;
# what it declines, Python reads.
CASES = {
    "plain": (ROW + IDS + AUTH, True),
    "upper-case verdicts and domains": (
        ROW.replace("none", "NONE").replace("pass", "Pass") + IDS.replace("example", "EXAMPLE"),
        True,
    ),
    "spaces and newlines around values": (
        ROW.replace("192.0.2.1", "\n  192.0.2.1 \t").replace(">3<", "> 3\r\n<") + IDS,
        True,
    ),
    "carriage returns by reference around values": (
        ROW.replace(">3<", ">&#13;3&#13;<") + IDS.replace("example.com", "&#13; example.com&#13;"),
        True,
    ),
    "IPv6 canonicalised": (ROW.replace("192.0.2.1", "2001:DB8:0:0::0:1"), True),
    "IPv4-mapped IPv6 is the IPv4 sender": (ROW.replace("192.0.2.1", "::ffff:192.0.2.9"), True),
    "IP in brackets": (ROW.replace("192.0.2.1", "[192.0.2.1]"), True),
    "count with leading zeros": (ROW.replace(">3<", ">0007<"), True),
    "count at the limit": (ROW.replace(">3<", ">2147483648<"), True),
    "a CDATA section": (IDS.replace("example.com", "<![CDATA[example.com]]>") + ROW, True),
    "text in CDATA and plain pieces": (IDS.replace("example.com", "ex<![CDATA[amp]]>le"), False),
    "an escaped ampersand": (IDS.replace("example.com", "a&amp;b.example") + ROW, True),
    "a comment inside a value (removed)": (ROW.replace("192.0.2.1", "192.0<!-- x -->.2.1"), True),
    "a child element inside a value": (IDS.replace("example.com", "ex<b/>ample.com") + ROW, True),
    "a value read twice keeps the last": (
        ROW.replace("<count>3</count>", "<count>3</count><count>5</count>")
        + IDS.replace("</header_from>", "</header_from><header_from>b.example</header_from>"),
        True,
    ),
    "two rows": (ROW + ROW.replace("192.0.2.1", "192.0.2.2"), True),
    "reasons, one empty": (
        ROW.replace(
            "</policy_evaluated>",
            "<reason><type>Forwarded</type><comment>list</comment></reason><reason></reason>"
            "<reason><comment>only a comment</comment></reason></policy_evaluated>",
        ),
        True,
    ),
    "an auth result without a result is left out": (
        ROW + "<auth_results><dkim><domain>a.example</domain></dkim><arc><result>pass</result>"
        "</arc></auth_results>",
        True,
    ),
    "long values are cut to their columns": (
        ROW.replace("<dkim>pass</dkim>", "<dkim>" + "p" * 40 + "</dkim>")
        + IDS.replace("example.com", "a" * 300 + ".example")
        + AUTH.replace("<result>pass", "<result>" + "x" * 30)
        .replace("<selector>s1", "<selector>" + "S" * 300)
        .replace(
            "</result></dkim>", "</result><human_result>" + "h" * 1500 + "</human_result></dkim>"
        ),
        True,
    ),
    "an empty result and a verdict that only starts with pass": (
        ROW.replace("<dkim>pass</dkim>", "<dkim>passed</dkim>")
        + AUTH.replace("<result>fail</result>", "<result> </result>"),
        True,
    ),
    "verdicts missing (alignment derived later)": (
        ROW.replace("<dkim>pass</dkim><spf>fail</spf>", "") + IDS + AUTH,
        True,
    ),
    "namespaced (dmarc-2.0)": (ROW + IDS + AUTH, True),
    "unknown elements are ignored": (
        "<extra>\x01</extra>" + ROW.replace("<row>", "<row><note>x</note>") + IDS,
        True,
    ),
    "a control character": (IDS.replace("example.com", "exa&#1;mple.com") + ROW, False),
    "a DEL character": (IDS.replace("example.com", "exa&#127;mple.com") + ROW, False),
    "a tab inside a value": (IDS.replace("example.com", "exa\tmple.com") + ROW, False),
    "non-ASCII text": (IDS.replace("example.com", "exämple.com") + ROW, False),
    "a non-breaking space around a value": (ROW.replace(">3<", ">\u00a03<"), False),
    "no source_ip": (ROW.replace("<source_ip>192.0.2.1</source_ip>", ""), False),
    "a bad source_ip": (ROW.replace("192.0.2.1", "192.0.2.256"), False),
    "an IPv4 with leading zeros": (ROW.replace("192.0.2.1", "192.0.2.01"), False),
    "an empty count": (ROW.replace(">3<", "><"), False),
    "a count past the limit": (ROW.replace(">3<", ">2147483649<"), False),
    "a negative count": (ROW.replace(">3<", ">-3<"), False),
    "a superscript digit": (ROW.replace(">3<", ">\u00b3<"), False),
}


@needs_walk
@pytest.mark.parametrize("case", CASES)
def test_crafted_records(case: str) -> None:
    body, taken = CASES[case]
    ns = " xmlns='urn:ietf:params:xml:ns:dmarc-2.0'" if "namespaced" in case else ""
    assert compare(record(body, ns)) == (1, int(taken))


@needs_walk
@pytest.mark.parametrize("case", CASES)
def test_crafted_records_with_text_in_pieces(case: str) -> None:
    compare(record(CASES[case][0]), PIECES)


@needs_walk
def test_a_text_in_pieces_is_joined_as_lxml_joins_it() -> None:
    pieces = "<![CDATA[ex]]>am<![CDATA[ple.COM]]> "
    assert compare(record(ROW + IDS.replace("example.com", pieces)), PIECES) == (1, 1)
    assert (
        walk(etree.fromstring(record(ROW + IDS.replace("example.com", pieces)), PIECES)[0])[5]
        == "example.com"
    )
    long = "a" * 1500 + "<![CDATA[" + "b" * 1500 + "]]>"  # past the walk's buffer: Python's
    assert compare(record(ROW + IDS.replace("example.com", long)), PIECES) == (1, 0)
    ip = "<![CDATA[192.0.]]>2.1"  # an IP or count in pieces: Python's too
    assert compare(record(ROW.replace("192.0.2.1", ip)), PIECES) == (1, 0)


_text = st.lists(
    st.sampled_from(
        ["a", "B", "z", ".", "-", " ", "\t", "\n", "0", "7", ":", "[", "]", "é", "&amp;", "&#1;"]
    ),
    max_size=12,
).map("".join)
_ip = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(["", "1.2.3", "::ffff:10.0.0.1", "[10.0.0.1]", " 10.0.0.1 ", "01.2.3.4"]),
)
_count = st.one_of(st.integers(0, 2**32).map(str), st.sampled_from(["", "x", " 5 ", "007", "²"]))
_verdict = st.one_of(st.sampled_from(["pass", "PASS", "fail", " none ", ""]), _text)


def _el(name: str, value: str | None) -> str:
    return "" if value is None else f"<{name}>{value}</{name}>"


@st.composite
def _records(draw: st.DrawFn) -> str:
    opt = st.none() | _text
    row = (
        _el("source_ip", draw(st.none() | _ip))
        + _el("count", draw(st.none() | _count))
        + "<policy_evaluated>"
        + _el("disposition", draw(st.none() | _verdict))
        + _el("dkim", draw(st.none() | _verdict))
        + _el("spf", draw(st.none() | _verdict))
        + "".join(
            f"<reason>{_el('type', draw(opt))}{_el('comment', draw(opt))}</reason>"
            for _ in range(draw(st.integers(0, 2)))
        )
        + "</policy_evaluated>"
    )
    ids = "".join(_el(n, draw(opt)) for n in ("header_from", "envelope_from", "envelope_to"))
    auth = "".join(
        f"<{method}>"
        + "".join(
            _el(n, draw(opt)) for n in ("domain", "selector", "scope", "result", "human_result")
        )
        + f"</{method}>"
        for method in draw(st.lists(st.sampled_from(["dkim", "spf", "arc"]), max_size=3))
    )
    return f"<row>{row}</row><identifiers>{ids}</identifiers><auth_results>{auth}</auth_results>"


@needs_walk
@settings(max_examples=400, deadline=None)
@given(_records())
def test_random_records_read_the_same(body: str) -> None:
    compare(record(body))


@needs_walk
def test_the_parser_yields_the_same_either_way(corpus: Path, tmp_path: Path) -> None:
    """Whole reports through AggregateParser with and without the walk: same records,
    metadata, drops and digests, or the same refusal."""
    generate_large_report(tmp_path / "large.xml", records=2000, seed=9)
    payloads = [*corpus_payloads(corpus), ("large", (tmp_path / "large.xml").read_bytes())]
    for name, xml in payloads:
        out: list[Any] = []
        for accelerated in (True, False):
            parser = AggregateParser(io.BytesIO(xml), source=name, accelerated=accelerated)
            try:
                meta = parser.read_meta()
                values = list(parser.values())
            except Exception as exc:
                out.append(repr(exc))
                continue
            out.append((meta, values, parser.dropped, parser.drop_reasons, parser.sha256))
        assert out[0] == out[1], name
    assert len(payloads) > 20


@needs_walk
def test_the_walk_is_used_only_when_it_reads_lxml_as_python_does() -> None:
    """A layout it does not know, or a probe it reads differently, and Python reads all."""
    from inboxops.dmarc import _walk

    assert _walk.bind(int) is False  # another size: refused, the bound type is kept
    with pytest.raises(TypeError):
        _walk.record("<record/>")
    assert fast_reader(etree._Element, etree.fromstring) is not None
    wrong = fast_reader(etree._Element, lambda xml: etree.fromstring(xml.replace(b"007", b"7x")))
    assert wrong is None


@needs_walk
def test_xinclude_markers_inside_a_text_are_skipped_as_lxml_skips_them(tmp_path: Path) -> None:
    """No import runs XInclude, but the walk reads .text by lxml's rule, markers included."""
    (tmp_path / "part.xml").write_text("<r>PART</r>")
    xml = (
        "<feedback xmlns:xi='http://www.w3.org/2001/XInclude'><record>" + ROW + "<identifiers>"
        f"<envelope_from>a<xi:include href='{tmp_path / 'part.xml'}' "
        "xpointer='xpointer(/r/text())'/>b</envelope_from></identifiers></record></feedback>"
    )
    tree = etree.fromstring(xml.encode(), PIECES).getroottree()
    tree.xinclude()
    el = tree.getroot()[0]
    assert walk(el) == record_values(el)
    assert walk(el)[6] == "apartb"
