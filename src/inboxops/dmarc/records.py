"""One ``<record>`` element of an aggregate report -> its values: the hot loop of the import.

Pure and separate from :mod:`inboxops.dmarc.parse` (which streams the document and reads its
metadata) because this is where a 100,000-record report spends its time: each record becomes a
plain tuple (:data:`RecordValues`, in column order) with its text cut to the column lengths and
cleaned by the rules of :mod:`inboxops.storage.text`, or a :class:`Drop` saying why it is
unusable. :func:`as_record` gives the :class:`~inboxops.dmarc.model.Record` of a tuple for the
callers that want objects.
"""

from __future__ import annotations

from collections.abc import Callable
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import Any

from inboxops.dmarc import align
from inboxops.dmarc.model import AuthResult, Record, ReportMeta
from inboxops.storage.text import clean_text

try:  # the C walk (_walk.c), built by pip install; without it every record is read in Python
    from inboxops.dmarc import _walk
except ImportError:  # a build without a C compiler
    _walk = None  # type: ignore[assignment]

_MAX_TEXT = 1024  # longest value we keep from one field; reports have no business exceeding it


class Drop:
    """Why one ``<record>`` was unusable, with the offending value for the report's errors."""

    __slots__ = ("reason", "value")

    def __init__(self, reason: str, value: str) -> None:
        self.reason = reason
        self.value = value


AuthValues = tuple[str, str, str | None, str, str | None, str | None]
"""One auth result in ``dmarc_auth_results`` column order: method, domain, selector, result,
scope, human_result."""

RecordValues = tuple[
    str,  # source_ip
    int,  # count
    str | None,  # disposition
    str | None,  # policy_dkim
    str | None,  # policy_spf
    str | None,  # header_from
    str | None,  # envelope_from
    str | None,  # envelope_to
    tuple[tuple[str, str | None], ...],  # reasons: (type, comment)
    tuple[AuthValues, ...],  # auth results
    bool,  # dkim_aligned
    bool,  # spf_aligned
]
"""One usable record as :meth:`AggregateParser.values` yields it: the fields of
:class:`~inboxops.dmarc.model.Record` in order, auth results as :data:`AuthValues`, every text
already cut to its column and cleaned."""


class Unclean:
    """A record whose text holds characters no column may store: cleaned after alignment is
    derived (on the values as sent, as for every other record)."""

    __slots__ = ("values",)

    def __init__(self, values: RecordValues) -> None:
        self.values = values


MAX_COUNT = 2**31  # per record: no real one comes near; x max_records stays inside BIGINT


LOCAL_NAMES: dict[Any, str] = {}


def local_name(tag: Any) -> str:
    """Tag without namespace; memoised, since a report repeats the same few dozen tags."""
    try:
        return LOCAL_NAMES[tag]
    except KeyError:
        pass
    except TypeError:  # unhashable: never a real tag
        return ""
    if not isinstance(tag, str):
        return ""  # comments, processing instructions, entity references
    name = tag.rpartition("}")[2]
    if len(LOCAL_NAMES) < 4096:
        LOCAL_NAMES[tag] = name
    return name


def element_text(el: Any) -> str:
    value: str | None = el.text
    if not value:
        return ""
    value = value.strip()
    return value[:_MAX_TEXT] if len(value) > _MAX_TEXT else value


def element_lower(el: Any) -> str | None:
    value = element_text(el)
    return value.lower() if value else None


def as_record(v: RecordValues) -> Record:
    """The :class:`~inboxops.dmarc.model.Record` of one :data:`RecordValues`."""
    return Record(
        source_ip=v[0],
        count=v[1],
        disposition=v[2],
        policy_dkim=v[3],
        policy_spf=v[4],
        header_from=v[5],
        envelope_from=v[6],
        envelope_to=v[7],
        reasons=v[8],
        auth_results=tuple(
            AuthResult(
                method=a[0], domain=a[1], selector=a[2], result=a[3], scope=a[4], human_result=a[5]
            )
            for a in v[9]
        ),
        dkim_aligned=v[10],
        spf_aligned=v[11],
    )


def derive(v: RecordValues, meta: ReportMeta) -> RecordValues:
    """Alignment from the auth results where ``<policy_evaluated>`` left a verdict out."""
    dkim, spf = align.derive_from(((a[0], a[1], a[3]) for a in v[9]), v[5], meta.adkim, meta.aspf)
    return (
        *v[:10],
        v[10] or (v[3] is None and dkim),
        v[11] or (v[4] is None and spf),
    )


def cleaned(v: RecordValues) -> RecordValues:
    def c(value: str | None) -> str | None:
        return None if value is None else clean_text(value)

    reasons = tuple((clean_text(t), c(comment)) for t, comment in v[8])
    auth = tuple((m, clean_text(d), c(s), clean_text(r), c(sc), c(h)) for m, d, s, r, sc, h in v[9])
    return (
        v[0],
        v[1],
        c(v[2]),
        c(v[3]),
        c(v[4]),
        c(v[5]),
        c(v[6]),
        c(v[7]),
        reasons,
        auth,
        v[10],
        v[11],
    )


def record_values(el: Any) -> RecordValues | Unclean | Drop:
    """One ``<record>`` element -> its values, or a :class:`Drop` saying why it is unusable.

    The hot loop of a 100,000-record report: tag names come from the memo dict directly,
    values are cut to their column lengths (storage/models.py: a reporter's garbage must not
    fail a batch), and one ``isprintable`` over all of a record's text decides whether it
    needs cleaning at all.
    """
    local = LOCAL_NAMES.get
    ip = count_text = ""
    disposition = pdkim = pspf = None
    header_from = envelope_from = envelope_to = None
    reasons: list[tuple[str, str | None]] | None = None
    auth: list[AuthValues] = []
    for part in el:
        name = local(part.tag) or local_name(part.tag)
        if name == "row":
            for c in part:
                cn = local(c.tag) or local_name(c.tag)
                if cn == "source_ip":
                    ip = (c.text or "").strip()
                elif cn == "count":
                    count_text = (c.text or "").strip()
                elif cn == "policy_evaluated":
                    for pe in c:
                        pn = local(pe.tag) or local_name(pe.tag)
                        if pn == "disposition":
                            disposition = (pe.text or "").strip().lower() or None
                        elif pn == "dkim":
                            pdkim = (pe.text or "").strip().lower() or None
                        elif pn == "spf":
                            pspf = (pe.text or "").strip().lower() or None
                        elif pn == "reason":
                            reason = _reason(pe)
                            if reason is not None:
                                if reasons is None:
                                    reasons = []
                                reasons.append(reason)
        elif name == "identifiers":
            for c in part:
                cn = local(c.tag) or local_name(c.tag)
                if cn == "header_from":
                    header_from = (c.text or "").strip().lower()[:255] or None
                elif cn == "envelope_from":
                    envelope_from = (c.text or "").strip().lower()[:255] or None
                elif cn == "envelope_to":
                    envelope_to = (c.text or "").strip().lower()[:255] or None
        elif name == "auth_results":
            for a in part:
                method = local(a.tag) or local_name(a.tag)
                if method != "dkim" and method != "spf":
                    continue
                domain = result = ""
                selector = scope = human = None
                for c in a:
                    cn = local(c.tag) or local_name(c.tag)
                    if cn == "domain":
                        domain = (c.text or "").strip().lower()
                    elif cn == "result":
                        result = (c.text or "").strip().lower()
                    elif cn == "selector":
                        selector = (c.text or "").strip() or None
                    elif cn == "scope":
                        scope = (c.text or "").strip().lower() or None
                    elif cn == "human_result":
                        human = element_text(c) or None
                if result:
                    auth.append(
                        (
                            method,
                            domain[:255],
                            selector and selector[:255],
                            result[:16],
                            scope and scope[:16],
                            human,
                        )
                    )
    source_ip = _ip(ip)
    if source_ip is None:
        return Drop("source_ip missing" if not ip else "source_ip is not an IP address", ip)
    if not (count_text.isascii() and count_text.isdigit()):  # not "²", which int() refuses
        return Drop(
            "count missing" if not count_text else "count is not a whole number", count_text
        )
    count = int(count_text)
    if count > MAX_COUNT:
        return Drop("count is implausibly large", count_text)
    values: RecordValues = (
        source_ip,
        count,
        disposition and disposition[:16],
        pdkim and pdkim[:16],
        pspf and pspf[:16],
        header_from,
        envelope_from,
        envelope_to,
        () if reasons is None else tuple(reasons),
        tuple(auth),
        pdkim == "pass",
        pspf == "pass",
    )
    probe = f"{disposition}{pdkim}{pspf}{header_from}{envelope_from}{envelope_to}"
    for a in auth:
        probe += f"{a[1]}{a[2]}{a[3]}{a[4]}{a[5]}"
    for r in reasons or ():
        probe += f"{r[0]}{r[1]}"
    return values if probe.isprintable() else Unclean(values)


def digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "²", which ``int`` refuses."""
    return text.isascii() and text.isdigit()


def _ip(text: str) -> str | None:
    """Validated, canonical IP text (RFC 5952 for IPv6), or None.

    ``socket.inet_pton`` is strict (no leading zeros, four octets) and runs in C, several times
    faster than :mod:`ipaddress` on the 100,000-record path.
    """
    if not text:
        return None
    text = text.strip("[]")
    if ":" not in text:
        try:
            return inet_ntop(AF_INET, inet_pton(AF_INET, text))
        except (OSError, ValueError):
            return None
    try:
        canonical = inet_ntop(AF_INET6, inet_pton(AF_INET6, text))
    except (OSError, ValueError):
        return None
    if canonical.startswith("::ffff:") and "." in canonical:
        # IPv4-mapped (some MTAs report the socket's view): the IPv4 address is the sender,
        # and only that form matches own_ips written as IPv4 CIDRs.
        return canonical[7:]
    return canonical


def _reason(el: Any) -> tuple[str, str | None] | None:
    rtype = comment = ""
    for c in el:
        cn = local_name(c.tag)
        if cn == "type":
            rtype = element_text(c).lower()
        elif cn == "comment":
            comment = element_text(c)
    if not rtype and not comment:
        return None
    return rtype or "other", comment or None


_PROBE = (
    b"<record xmlns='urn:ietf:params:xml:ns:dmarc-2.0'><row><source_ip>[::ffff:192.0.2.1]"
    b"</source_ip><count>007</count><policy_evaluated><disposition>None</disposition>"
    b"<dkim>PASS</dkim><spf>fail</spf><reason><type>Forwarded</type><comment>via list"
    b"</comment></reason></policy_evaluated></row><identifiers><header_from> Example.COM "
    b"</header_from></identifiers><auth_results><dkim><domain>a.example</domain><selector>s1"
    b"</selector><result>pass</result><human_result>ok</human_result></dkim><spf><domain>"
    b"b.example</domain><scope>MFROM</scope><result>softfail</result></spf></auth_results>"
    b"</record>"
)


def fast_reader(
    element_type: type, parse: Callable[[bytes], Any]
) -> Callable[[Any], RecordValues | None] | None:
    """The C walk of a record (:mod:`inboxops.dmarc._walk`), when it is built and reads lxml's
    elements as this module does: None otherwise, and every record is read by
    :func:`record_values`.

    The C walk returns a record's values, or None for any record it does not know completely
    (then :func:`record_values` reads it). It reads libxml2's nodes through lxml's element
    layout, so before it is trusted it must accept that layout and read a probe record exactly
    as :func:`record_values` does.
    """
    if _walk is None or not _walk.bind(element_type):
        return None
    probe = parse(_PROBE)
    if _walk.record(probe) != record_values(probe):
        return None
    return _walk.record
