"""Why a receiver deferred or refused a message: a Postfix reply -> one of ten reason classes.

The enhanced status code alone is not enough. Replies without an enhanced code arrive as
``dsn=4.0.0``/``5.0.0`` (Comcast ``BL000000``, Cox ``AUP#CXBL``, Mimecast, Yahoo ``dd``), a 5xx
greeting is logged as ``status=deferred`` with ``dsn=4.0.0``, and the same ``5.7.1`` means a
block at Microsoft and an SPF failure at a Cisco gateway. So a rule may look at the text, at the
``dsn`` the log line carries, or at both, and the first rule of :data:`RULES` that matches wins.

Precedence, top to bottom (the table is grouped in this order):

1. ``status=sent`` is ``accepted`` without looking at any rule.
2. What Postfix itself says before any reply: DNS lookups that failed, connections that failed
   or were lost. These texts are Postfix's own, so they are anchored at the start.
3. A 5xx greeting (``host X refused to talk to me: 5..``): the receiver refused the session.
4. Operator-specific texts, each named after the operator and the catalogue row it comes from
   (``shared/reference/provider-replies.md``). Where two operators' wordings overlap, the
   rate-limit rule sits above the block rule (Microsoft's rate limit mentions "IP reputation").
5. Generic texts any MTA may send: authentication, unknown users, full mailboxes, greylisting and
   rate limits, then blocklists and spam verdicts.
6. A 4xx greeting nothing above recognised is still a refused session: ``greeting_block``.
7. Enhanced codes, from the ``dsn`` field, for replies whose text said nothing we know.
8. Anything else is ``other``.

Rules never see the raw reply. :func:`normalise` lower-cases it, replaces the Postfix wrapper's
``host NAME[IP]`` with ``host``, drops ``(in reply to ... command)``, folds multi-line replies
(``550-5.7.26 ... 550-5.7.26 ...``) into one line, and cuts per-message trace ids (Gmail's id
before ``- gsmtp``, Microsoft's trailing ``[...]``). Patterns are written against that text;
:func:`explain` shows it, so a newcomer writes a rule against what the rule will actually see.
Because the verdict depends only on ``(dsn, normalised text)``, it is memoised on exactly that
key: a fleet's thousands of deferrals collapse to a few hundred distinct keys.

To add a rule: put a ``_rule(...)`` line in the right group with a ``source`` naming where the
wording was seen, and a sample in ``tests/test_reputation_reasons.py`` (a test fails when a rule
is not the first match of any sample, so no rule is dead or shadowed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

ACCEPTED: Final = "accepted"
THROTTLED: Final = "throttled"
POLICY_BLOCK: Final = "policy_block"
AUTH_FAILURE: Final = "auth_failure"
USER_UNKNOWN: Final = "user_unknown"
MAILBOX_FULL: Final = "mailbox_full"
GREETING_BLOCK: Final = "greeting_block"
CONNECTION: Final = "connection"
DNS: Final = "dns"
OTHER: Final = "other"

REASONS: Final[tuple[str, ...]] = (
    ACCEPTED,
    THROTTLED,
    POLICY_BLOCK,
    AUTH_FAILURE,
    USER_UNKNOWN,
    MAILBOX_FULL,
    GREETING_BLOCK,
    CONNECTION,
    DNS,
    OTHER,
)

SENT_RULE: Final = "status-sent"  # the pseudo-rule :func:`explain` names for status=sent
FALLBACK_RULE: Final = "fallback"  # ... and for a reply no rule matched


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table: ``text`` is searched in the normalised reply, ``dsn`` must match
    the whole enhanced code; a rule with both needs both, and at least one is always set."""

    name: str
    reason: str
    text: re.Pattern[str] | None
    dsn: re.Pattern[str] | None
    source: str

    def matches(self, dsn: str, text: str) -> bool:
        if self.dsn is not None and self.dsn.fullmatch(dsn) is None:
            return False
        return self.text is None or self.text.search(text) is not None


def _rule(name: str, reason: str, *, text: str = "", dsn: str = "", source: str) -> Rule:
    assert reason in REASONS, name
    assert text or dsn, name
    return Rule(
        name,
        reason,
        re.compile(text) if text else None,
        re.compile(dsn) if dsn else None,
        source,
    )


# fmt: off
RULES: Final[tuple[Rule, ...]] = (
    # -- 2. Postfix's own words: no reply was received ----------------------------------------
    _rule("postfix-dns-lookup", DNS,
          text=r"^(?:host or domain name not found|name service error|unable to look up host)",
          source="Postfix smtp(8); recipe line 'unable to look up host ...'"),
    _rule("postfix-null-mx", DNS, text=r"does not accept mail",
          source="Postfix smtp(8) on an RFC 7505 null MX: 'example.com does not accept mail'"),
    _rule("postfix-connect", CONNECTION, text=r"^connect to host: ",
          source="Postfix smtp(8): 'connect to HOST[IP]:25: Connection timed out'"),
    _rule("postfix-lost-connection", CONNECTION,
          text=r"^(?:lost connection with host|conversation with host timed out)",
          source="Postfix smtp(8): 'lost connection with ...', 'conversation with ... timed out'"),
    # -- 3. the receiver refused the session at its 5xx greeting ------------------------------
    _rule("postfix-5xx-greeting", GREETING_BLOCK, text=r"^host refused to talk to me: 5",
          source="smtp_skip_5xx_greeting: GMX 554 'IP address is black listed', Orange 550"),
    # -- 4. operators --------------------------------------------------------------------------
    _rule("microsoft-rate-limit-reputation", THROTTLED, text=r"rate limited due to ip reputation",
          source="Microsoft 451 4.7.650/4.7.651 (S775/S3113/S844); Mailu#3013"),
    _rule("microsoft-block-list", POLICY_BLOCK,
          text=r"\(a?s31[45]0\)|part of their network is on our block list",
          source="Microsoft 550 5.7.1 (S3140/S3150/AS3140); recipe line"),
    _rule("microsoft-banned-sending-ip", POLICY_BLOCK, text=r"banned sending ip",
          source="Microsoft 550 5.7.606-649 'Access denied, banned sending IP'"),
    _rule("microsoft-banned-sender", POLICY_BLOCK, text=r"banned sender",
          source="Microsoft 550 5.7.511 (wording not verified, reference says so)"),
    _rule("microsoft-traffic-not-accepted", POLICY_BLOCK, text=r"traffic not accepted from this ip",
          source="Microsoft 550 5.7.708 'Access denied, traffic not accepted from this IP'"),
    _rule("microsoft-mailfrom-spamhaus", POLICY_BLOCK,
          text=r"mailfrom domain is listed in spamhaus",
          source="Microsoft 550 5.7.1 S8002; field-manual 550.json"),
    _rule("microsoft-directory-reject", USER_UNKNOWN, dsn=r"5\.4\.1",
          text=r"recipient address rejected: access denied",
          source="Microsoft 550 5.4.1 directory-based edge blocking: no such recipient"),
    _rule("gmail-rate-limit", THROTTLED,
          text=r"unusual rate of unsolicited mail|unsolicitedratelimiterror",
          source="Gmail 421-4.7.28 / 421-4.7.0 '[IP 15] ... unusual rate'; mail-in-a-box#1771"),
    _rule("gmail-per-user-rate", THROTTLED,
          text=r"receiving mail (?:at a rate|too quickly)",
          source="Gmail 450-4.2.1 'user ... receiving mail at a rate that prevents ...'"),
    _rule("gmail-low-reputation", POLICY_BLOCK, text=r"very low reputation of the sending",
          source="Gmail 421 4.7.0 / 550-5.7.1 '... very low reputation of the sending domain/IP'"),
    _rule("gmail-unsolicited", POLICY_BLOCK,
          text=r"likely unsolicited mail|unsolicitedmessageerror",
          source="Gmail 550-5.7.1 '[IP 12] ... likely unsolicited mail'"),
    _rule("gmail-unauthenticated", AUTH_FAILURE,
          text=r"this mail is unauthenticated|sender is unauthenticated"
          r"|not accepted due to domain's dmarc policy",
          source="Gmail 550-5.7.26 unauthenticated / DMARC rejection; MISP#9284, Purelymail#394"),
    _rule("gmail-no-account", USER_UNKNOWN,
          text=r"account that you tried to reach (?:does not exist|is disabled)",
          source="Gmail 550-5.1.1 / 550-5.2.1; field-manual 550.json"),
    _rule("yahoo-volume-complaints", THROTTLED,
          text=r"\[(?:tss|ipts)0[45]\]|temporarily deferred due to (?:unexpected volume or )?user",
          source="Yahoo/AOL 421 4.7.0 [TSS04]/[TSS05]/[IPTS04]; recipe line; Mailu#1458"),
    _rule("yahoo-permanently-deferred", POLICY_BLOCK,
          text=r"\[tss0[69]\]|will be permanently deferred",
          source="Yahoo 553 5.7.2 [TSS06] (the generator uses [TSS09]); hardware/mailserver#206"),
    _rule("yahoo-policy-reasons", POLICY_BLOCK, text=r"not accepted for policy reasons",
          source="Yahoo 554 5.7.9 'Message not accepted for policy reasons'"),
    _rule("yahoo-spamhaus-list", POLICY_BLOCK, text=r"\[bl\d+\]|\[tss07\]",
          source="Yahoo 553 5.7.1 [BL21]/[TSS07] '... the ip is in Spamhaus's list'"),
    _rule("yahoo-no-account", USER_UNKNOWN,
          text=r"user doesn't have an? \S+ account|this mailbox is disabled",
          source="Yahoo 554 'delivery error: dd This user doesn't have a yahoo.com account'"),
    _rule("icloud-local-policy", POLICY_BLOCK, text=r"\[cs0\d\]|rejected due to local policy",
          source="Apple iCloud 554/550 5.7.1 [CS01]; chatmail/core#6547"),
    _rule("icloud-excessive-volume", THROTTLED, text=r"deferred due to excessive volume",
          source="Apple iCloud 421 4.7.1 'Messages to ... deferred due to excessive volume'"),
    _rule("proofpoint-blocked", POLICY_BLOCK, text=r"blocked - see https?://\S*proofpoint\.com",
          source="Proofpoint 550/554 5.7.0 'Blocked - see ...proofpoint.com' (also Apple's MX)"),
    _rule("comcast-rate-limit", THROTTLED, text=r"\brl0*\d{1,6}\b|too many sessions opened",
          source="Comcast RL000001/RL001, 421 'Too many sessions opened'; postmaster.comcast.net"),
    _rule("comcast-block", POLICY_BLOCK,
          text=r"comcast block for spam|\b(?:bl|es)0\d{5}\b",
          source="Comcast 554 'Comcast block for spam' BL000000/BL000001/BL000010/ES000010"),
    _rule("cox-too-many-connections", THROTTLED, text=r"aup#cxcnct",
          source="Cox 421 'cmsmtp blocked ... AUP#CXCNCT' (concurrent connections)"),
    _rule("cox-block", POLICY_BLOCK, text=r"aup#\w+|cmsmtp blocked",
          source="Cox 554 'cmsmtp blocked ... AUP#CXBL'; CDRBL temporary block"),
    _rule("mimecast-anti-spoofing", POLICY_BLOCK, text=r"anti-spoofing policy",
          source="Mimecast 550 'Rejected by header based Anti-Spoofing policy'"),
    _rule("mimecast-envelope-blocked", POLICY_BLOCK,
          text=r"administrative prohibition|envelope blocked",
          source="Mimecast 550 'Administrative prohibition - envelope blocked'"),
    _rule("mimecast-resource-unavailable", THROTTLED,
          text=r"internal resource temporarily unavailable",
          source="Mimecast 451 'Internal resource temporarily unavailable'"),
    _rule("barracuda-content", POLICY_BLOCK,
          text=r"spam url|banned content|spoofed message",
          source="Barracuda 554 'rejected due to spam URL in content', 'rejecting banned ...'"),
    _rule("cisco-spf-temporary", THROTTLED, text=r"temporary error occurred during spf",
          source="Cisco ESA default defer text '#4.4.3 Temporary error ... SPF verification'"),
    _rule("relay-access-denied", POLICY_BLOCK, text=r"relay access denied",
          source="Proofpoint/any Postfix 554 5.7.1 '<x>: Relay access denied'"),
    # -- 5. generic texts ---------------------------------------------------------------------
    _rule("spf-failure", AUTH_FAILURE,
          text=r"spf unauthorized|sender policy framework|\bspf (?:check |validation )?fail",
          source="Cisco ESA default reject '#5.7.1 SPF unauthorized mail is prohibited'"),
    _rule("dmarc-failure", AUTH_FAILURE, text=r"\bdmarc\b",
          source="DMARC rejections by any receiver (Microsoft 5.7.509, Mimecast, Gmail)"),
    _rule("dkim-failure", AUTH_FAILURE,
          text=r"\bunauthenticated\b|\bdkim\b[^.;]{0,40}\b(?:fail|did not pass|invalid)",
          source="'unauthenticated' and DKIM failures by any receiver"),
    _rule("user-unknown", USER_UNKNOWN,
          text=r"user unknown|unknown user|no such (?:user|mailbox|recipient|address)"
          r"|(?:user|recipient|mailbox|address) not found|(?:unknown|invalid) recipient"
          r"|does ?n[o']t exist|mailbox unavailable|not a valid mailbox|unrouteable address"
          r"|(?:account|mailbox) (?:is )?(?:disabled|inactive)",
          source="Postfix local/virtual, Proofpoint/Barracuda 'User unknown', many others"),
    _rule("mailbox-full", MAILBOX_FULL,
          text=r"over ?quota|quota exceeded|mailbox (?:is )?full|insufficient (?:system )?storage"
          r"|exceeded (?:its |the )?(?:storage )?(?:quota|allocation)|out of storage",
          source="over quota / mailbox full texts of many MTAs"),
    _rule("greylisting", THROTTLED, text=r"gr[ae]y-?list",
          source="Barracuda 451 4.7.1 'Greylisted for 5 minutes', postgrey, rspamd"),
    _rule("rate-limit", THROTTLED,
          text=r"rate.?limit|too many (?:connections|messages|recipients|concurrent)"
          r"|throttl|slow down|excessive (?:volume|connections)",
          source="generic rate limiting texts"),
    _rule("temporarily-unavailable", THROTTLED, text=r"temporarily (?:not available|unavailable)",
          source="'421 ... Service temporarily not available' (GMX, and many MTAs)"),
    _rule("policy-rejection", POLICY_BLOCK,
          text=r"reject(?:ed)? due to policy|policy restrictions|policy violation",
          source="GMX/WEB.DE '554-Transaction failed 554-Reject due to policy restrictions'"),
    _rule("blocklist", POLICY_BLOCK,
          text=r"blocked using|black ?list|block ?list|spamhaus|spamcop|\bdnsbl\b|\brbl\b"
          r"|\breputation\b|\bptr\b|reverse dns|\bspam\b",
          source="Postfix 554 5.7.1 'blocked using zen.spamhaus.org'; PTR and spam verdicts"),
    # -- 6. a 4xx greeting nothing above recognised --------------------------------------------
    _rule("postfix-greeting", GREETING_BLOCK, text=r"^host refused to talk to me: ",
          source="Postfix smtp(8): the receiver refused the session at its greeting"),
    # -- 7. enhanced codes (the dsn field) ------------------------------------------------------
    _rule("dsn-user-unknown", USER_UNKNOWN, dsn=r"5\.1\.[0136]|5\.2\.1",
          source="RFC 3463 X.1.1 bad mailbox, X.1.6 moved; Gmail 5.2.1 disabled account"),
    _rule("dsn-mailbox-full", MAILBOX_FULL, dsn=r"[45]\.2\.2", source="RFC 3463 X.2.2"),
    _rule("dsn-per-user-rate", THROTTLED, dsn=r"4\.2\.1",
          source="Gmail 450-4.2.1 per-recipient rate"),
    _rule("dsn-connection", CONNECTION, dsn=r"4\.4\.[12]",
          source="RFC 3463 X.4.1 no answer, X.4.2 bad connection; Postfix"),
    _rule("dsn-dns", DNS, dsn=r"[45]\.4\.[34]|5\.1\.10",
          source="RFC 3463 X.4.3/X.4.4 routing/DNS; RFC 7505 5.1.10 null MX"),
    _rule("dsn-auth", AUTH_FAILURE, dsn=r"5\.7\.(?:2[0-4]|26|509|515)",
          source="RFC 7372 5.7.20-24, 5.7.26; Microsoft 5.7.509 DMARC, 5.7.515 (not verified)"),
    _rule("dsn-temporary-policy", THROTTLED, dsn=r"4\.7\.\d{1,3}",
          source="RFC 3463 4.7.x: a temporary policy deferral, retried by Postfix"),
    _rule("dsn-policy", POLICY_BLOCK, dsn=r"5\.7\.\d{1,3}",
          source="RFC 3463 5.7.x: a permanent refusal (Microsoft 5.7.606-649, 5.7.708, 5.7.511)"),
)
# fmt: on

_BY_NAME: Final = {rule.name: rule for rule in RULES}
assert len(_BY_NAME) == len(RULES), "rule names must be unique"


@dataclass(frozen=True, slots=True)
class Explanation:
    """What :func:`explain` found: the class, the rule's name, and the text the rules saw."""

    reason: str
    rule: str  # a Rule.name, SENT_RULE or FALLBACK_RULE
    normalised: str

    @property
    def source(self) -> str:
        """Where the matched rule's wording was seen ('' for the pseudo-rules)."""
        rule = _BY_NAME.get(self.rule)
        return rule.source if rule else ""


_SUSPENDED = "delivery temporarily suspended: "
_SAID = " said: "
_REFUSED = " refused to talk to me: "
_HOSTPORT = re.compile(r"[^\s\[\]]+\[[^\]\s]*\](?::\d+)?")  # NAME[IP]:PORT in Postfix's texts
_LEAD = re.compile(r"(\d{3})-(\d\.\d{1,3}\.\d{1,3} )?")  # a multi-line reply's first prefix
_TRACE_DIGIT = re.compile(r"\d")


def _fold(reply: str) -> str:
    """One line out of a multi-line reply: ``550-5.7.26 a 550-5.7.26 b 550 5.7.26 c`` becomes
    ``550 5.7.26 a b c``, so a phrase split across reply lines still matches a pattern."""
    m = _LEAD.match(reply)
    if m is None:
        return reply
    code, enhanced = m.group(1), m.group(2) or ""
    rest = reply[m.end() :]
    rest = rest.replace(f" {code}-{enhanced}", " ").replace(f" {code} {enhanced}", " ")
    return f"{code} {enhanced}{rest}"


def _cut_trace(reply: str) -> str:
    """Drop per-message ids a receiver appends (they would make every reply unique)."""
    if reply.endswith(" - gsmtp"):  # Gmail: '... <id> - gsmtp'
        cut = reply.rfind(" ", 0, len(reply) - 8)
        return reply[:cut] + " - gsmtp" if cut > 0 else reply
    for _ in range(2):  # Microsoft: '... [DM6NAM11FT088.eop-nam11.prod.outlook.com 2023-...]'
        if not reply.endswith("]"):
            break
        start = reply.rfind("[")
        if start <= 0 or len(reply) - start <= 12 or not _TRACE_DIGIT.search(reply, start):
            break
        reply = reply[:start].rstrip()
    return reply


def normalise(reply: str) -> str:
    """The text the rules see: see the module docstring for what is removed and why."""
    text = reply.lower()
    while text.startswith(_SUSPENDED):
        text = text[len(_SUSPENDED) :]
    if not text.startswith("host "):
        return _HOSTPORT.sub("host", text)
    said, refused = text.find(_SAID), text.find(_REFUSED)
    if said < 0 and refused < 0:
        return _HOSTPORT.sub("host", text)
    if refused < 0 or 0 <= said < refused:
        head, remote = "host said: ", text[said + len(_SAID) :]
    else:
        head, remote = "host refused to talk to me: ", text[refused + len(_REFUSED) :]
    cut = remote.rfind(" (in reply to ")
    if cut >= 0 and remote.endswith(")"):
        remote = remote[:cut]
    if remote[3:4] == "-":
        remote = _fold(remote)
    return head + _cut_trace(remote.rstrip())


def _match(dsn: str, text: str) -> Rule | None:
    for rule in RULES:
        if rule.matches(dsn, text):
            return rule
    return None


@lru_cache(maxsize=16384)
def _classify_normalised(dsn: str, text: str) -> str:
    rule = _match(dsn, text)
    return rule.reason if rule else OTHER


def classify(status: str, dsn: str, reply: str) -> str:
    """The reason class of one delivery attempt; memoised on ``(dsn, normalise(reply))``."""
    if status == "sent":
        return ACCEPTED
    return _classify_normalised(dsn, normalise(reply))


def explain(status: str, dsn: str, reply: str) -> Explanation:
    """:func:`classify` with its working: which rule matched, on which normalised text."""
    text = normalise(reply)
    if status == "sent":
        return Explanation(ACCEPTED, SENT_RULE, text)
    rule = _match(dsn, text)
    if rule is None:
        return Explanation(OTHER, FALLBACK_RULE, text)
    return Explanation(rule.reason, rule.name, text)
