"""The built-in table of receiving operators, as data: who runs the MX hosts a message goes to.

Facts come from ``shared/reference/mx-operators.md`` (public MX data, provider docs, classifier
projects); each group below names where its patterns were seen. A pattern is a host-name suffix
matched on a label boundary: ``google.com`` matches ``google.com`` and ``x.google.com``, never
``evilgoogle.com``. A ``*`` label stands for exactly one label, for the rare operator whose
stable part is not at the end (Amazon's ``inbound-smtp.<region>.amazonaws.com``); a bare
``amazonaws.com`` would also claim every EC2 host that runs its own MTA.

The most specific pattern wins, so a broad fallback (``google.com`` -> Workspace) can sit beside
a narrow exception (``gmail-smtp-in.l.google.com`` -> consumer Gmail). Security gateways front
other organisations' mailboxes and are classified as the gateway: that is who accepts or refuses
our mail. Re-check the moves noted below: Cox and Comcast leaving for Yahoo are exactly the
"MX moved to an excluded operator" event list hygiene looks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["mailbox_provider", "security_gateway", "hosting", "forwarding", "other"]
KINDS: Final[tuple[str, ...]] = (
    "mailbox_provider",
    "security_gateway",
    "hosting",
    "forwarding",
    "other",
)

OTHER: Final = "other"  # the operator of every host no pattern claims


@dataclass(frozen=True, slots=True)
class Operator:
    """Who runs a set of MX hosts; ``id`` is the stable key stored in the database."""

    id: str
    name: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern -> operator (and segment, where the operator runs two distinct services)."""

    pattern: str
    operator: str
    segment: str | None = None


def _op(id_: str, name: str, kind: Kind) -> Operator:
    return Operator(id_, name, kind)


OPERATORS: Final[tuple[Operator, ...]] = (
    _op("google", "Google (Gmail / Workspace)", "mailbox_provider"),
    _op("microsoft", "Microsoft (Outlook.com / 365)", "mailbox_provider"),
    _op("yahoo", "Yahoo (Yahoo, AOL, Verizon, Rogers, Cox)", "mailbox_provider"),
    _op("apple", "Apple iCloud", "mailbox_provider"),
    _op("comcast", "Comcast / Xfinity", "mailbox_provider"),
    _op("cox", "Cox (Cloudmark-filtered, before 2024-10)", "mailbox_provider"),
    _op("bell", "Bell / Sympatico", "mailbox_provider"),
    _op("att", "AT&T / BellSouth / SBC", "mailbox_provider"),
    _op("gmx", "GMX / WEB.DE / mail.com", "mailbox_provider"),
    _op("zoho", "Zoho Mail", "mailbox_provider"),
    _op("fastmail", "Fastmail", "mailbox_provider"),
    _op("proton", "Proton Mail", "mailbox_provider"),
    _op("yandex", "Yandex", "mailbox_provider"),
    _op("mailru", "Mail.ru / VK WorkSpace", "mailbox_provider"),
    _op("qq", "QQ / Tencent", "mailbox_provider"),
    _op("netease", "NetEase (163 / 126)", "mailbox_provider"),
    _op("earthlink", "EarthLink", "mailbox_provider"),
    _op("mimecast", "Mimecast", "security_gateway"),
    _op("proofpoint", "Proofpoint", "security_gateway"),
    _op("cisco", "Cisco Secure Email (IronPort)", "security_gateway"),
    _op("barracuda", "Barracuda Email Security", "security_gateway"),
    _op("messagelabs", "Broadcom / Symantec MessageLabs", "security_gateway"),
    _op("forcepoint", "Forcepoint", "security_gateway"),
    _op("godaddy", "GoDaddy Workspace", "hosting"),
    _op("rackspace", "Rackspace Email", "hosting"),
    _op("amazon", "Amazon SES / WorkMail inbound", "hosting"),
    _op("cloudflare", "Cloudflare Email Routing", "forwarding"),
    _op(OTHER, "Other / unclassified", "other"),
)

RULES: Final[tuple[Rule, ...]] = (
    # Google: consumer Gmail has its own MX; everything else under google.com /
    # googlemail.com is a Workspace (custom domain) MX. mxsniff; provider registries.
    Rule("gmail-smtp-in.l.google.com", "google", "consumer"),
    Rule("aspmx.l.google.com", "google", "workspace"),
    Rule("smtp.google.com", "google", "workspace"),
    Rule("googlemail.com", "google", "workspace"),
    Rule("google.com", "google", "workspace"),
    # Microsoft: consumer Outlook.com vs 365 tenants; mx.microsoft for tenants since 2024-03
    # (a real TLD, .microsoft). reacherhq; c7solutions; MS Tech Community (inbound DANE).
    Rule("olc.protection.outlook.com", "microsoft", "consumer"),
    Rule("mail.protection.outlook.com", "microsoft", "365"),
    Rule("mail.eo.outlook.com", "microsoft", "365"),
    Rule("mx.microsoft", "microsoft", "365"),
    Rule("outlook.com", "microsoft", None),  # fallback: a Microsoft host of unknown service
    # Yahoo, AOL, Verizon, Rogers; cox.net since 2024-10-01; Comcast mailboxes moving here.
    Rule("yahoodns.net", "yahoo", None),
    Rule("mx-biz.mail.am0.yahoodns.net", "yahoo", "business"),
    Rule("mail.icloud.com", "apple", None),  # also iCloud+ custom domains
    Rule("comcast.net", "comcast", None),
    Rule("cxr.mx.a.cloudfilter.net", "cox", None),  # cox.net's MX until 2024-10-01
    Rule("bell.net", "bell", None),  # mxmta.owm.bell.net; single source
    Rule("prodigy.net", "att", None),  # *-ip4-mx-vip*.prodigy.net
    Rule("gmx.net", "gmx", None),
    Rule("gmx.com", "gmx", None),
    Rule("mail.com", "gmx", None),
    Rule("web.de", "gmx", None),  # mx01.web.de; one probe list
    Rule("zoho.com", "zoho", None),
    Rule("zoho.eu", "zoho", None),
    Rule("zoho.in", "zoho", None),
    Rule("zoho.com.au", "zoho", None),
    Rule("zoho.jp", "zoho", None),
    Rule("zohomail.com", "zoho", None),
    Rule("messagingengine.com", "fastmail", None),
    Rule("protonmail.ch", "proton", None),
    Rule("mx.yandex.ru", "yandex", "consumer"),
    Rule("mx.yandex.net", "yandex", "360"),
    Rule("mail.ru", "mailru", None),
    Rule("qq.com", "qq", None),
    Rule("netease.com", "netease", None),
    Rule("oxsus-vadesecure.net", "earthlink", None),
    # Security gateways: classified as the gateway, whoever holds the mailbox behind it.
    Rule("mimecast.com", "mimecast", None),
    Rule("mimecast.co.za", "mimecast", None),
    Rule("mimecast-offshore.com", "mimecast", None),
    Rule("pphosted.com", "proofpoint", None),
    Rule("ppe-hosted.com", "proofpoint", None),  # Proofpoint Essentials
    Rule("iphmx.com", "cisco", None),
    Rule("barracudanetworks.com", "barracuda", None),
    Rule("messagelabs.com", "messagelabs", None),
    Rule("mailcontrol.com", "forcepoint", None),
    # Hosting and forwarding. GoDaddy-resold 365 shows 365's MX and is classified as microsoft.
    Rule("secureserver.net", "godaddy", None),
    Rule("emailsrvr.com", "rackspace", None),
    Rule("inbound-smtp.*.amazonaws.com", "amazon", None),
    Rule("mx.cloudflare.net", "cloudflare", None),
)
