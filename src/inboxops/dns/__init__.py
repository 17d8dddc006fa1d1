"""The one DNS layer (dnspython): typed lookups with TTLs and precise statuses, never raising.

Build a :class:`Resolver` once from settings and pass it to whatever needs DNS.
"""

from __future__ import annotations

from inboxops.dns.resolve import (
    AddressResult,
    DnsblResult,
    FcrdnsResult,
    MxRecord,
    MxResult,
    Nameserver,
    PtrResult,
    Resolver,
    Status,
    TxtResult,
    parse_nameserver,
    parse_nameservers,
    to_name,
)

__all__ = [
    "AddressResult",
    "DnsblResult",
    "FcrdnsResult",
    "MxRecord",
    "MxResult",
    "Nameserver",
    "PtrResult",
    "Resolver",
    "Status",
    "TxtResult",
    "parse_nameserver",
    "parse_nameservers",
    "to_name",
]
