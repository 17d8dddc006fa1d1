"""DMARC identifier alignment (RFC 7489 section 3.1), used when a reporter omits its verdict.

Receivers normally state the aligned DKIM/SPF verdict in ``<policy_evaluated>``; some old or
minimal reporters leave it out, and then alignment is derived from ``<auth_results>`` and the
published ``adkim``/``aspf`` modes. Relaxed mode compares organisational domains, which needs the
Public Suffix List (``publicsuffixlist`` ships a copy, so nothing is fetched at run time).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache, lru_cache
from typing import Any

from inboxops.dmarc.model import AuthResult


@cache
def _psl() -> Any:
    """Loaded on first use: parsing the list costs ~30 ms that most runs never need."""
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


@lru_cache(maxsize=65536)
def org_domain(domain: str) -> str:
    """The organisational domain: ``mail.example.co.uk`` -> ``example.co.uk``."""
    domain = domain.strip().strip(".").lower()
    found: str | None = _psl().privatesuffix(domain)
    return found or domain


def aligned(identifier: str, header_from: str, mode: str | None) -> bool:
    """Is ``identifier`` aligned with the RFC5322.From domain under ``mode`` (r or s)?"""
    if not identifier or not header_from:
        return False
    a = identifier.strip().strip(".").lower()
    b = header_from.strip().strip(".").lower()
    if (mode or "r") == "s":
        return a == b
    return a == b or org_domain(a) == org_domain(b)


def derive(
    results: Iterable[AuthResult], header_from: str | None, adkim: str | None, aspf: str | None
) -> tuple[bool, bool]:
    """(dkim_aligned, spf_aligned) from raw auth results: a passing, aligned identifier."""
    return derive_from(((r.method, r.domain, r.result) for r in results), header_from, adkim, aspf)


def derive_from(
    results: Iterable[tuple[str, str, str]],
    header_from: str | None,
    adkim: str | None,
    aspf: str | None,
) -> tuple[bool, bool]:
    """:func:`derive` over ``(method, domain, result)`` triples (the parser's hot path)."""
    dkim = spf = False
    hf = header_from or ""
    for method, domain, result in results:
        if result != "pass":
            continue
        if method == "dkim" and aligned(domain, hf, adkim):
            dkim = True
        elif method == "spf" and aligned(domain, hf, aspf):
            spf = True
    return dkim, spf
