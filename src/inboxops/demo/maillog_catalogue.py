"""The reply catalogue and the fleet that :mod:`inboxops.demo.maillog` draws from.

Data, kept apart from the generator's engine so each stays small. Replies are written after the
rows of ``shared/reference/provider-replies.md`` (abbreviated, in our own words where the row says
the wording was not verified; the reference also notes where the generator's text is a model),
operators' MX names after ``shared/reference/mx-operators.md``. Every reply names the reason class
:mod:`inboxops.reputation.reasons` must give it; the tests hold the two to each other.

Addresses are documentation ranges and ``.example`` domains, except the consumer mailbox domains
and the operators' real MX host names, which is what the demo is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from inboxops.reputation.reasons import AUTH_FAILURE as _A
from inboxops.reputation.reasons import CONNECTION as _C
from inboxops.reputation.reasons import DNS as _D
from inboxops.reputation.reasons import GREETING_BLOCK as _G
from inboxops.reputation.reasons import MAILBOX_FULL as _F
from inboxops.reputation.reasons import OTHER as _O
from inboxops.reputation.reasons import POLICY_BLOCK as _R
from inboxops.reputation.reasons import THROTTLED as _T
from inboxops.reputation.reasons import USER_UNKNOWN as _U

STORY_NAME: Final = "postfix-out07/msft/smtp"  # the transport whose IP gets blocked


@dataclass(frozen=True, slots=True)
class Reply:
    """One way a receiver answers, with the class the classifier must find.

    ``kind``: ``said`` (a reply to a command), ``session`` (the same, after a non-final
    ``host X said:`` line from the first MX tried), ``greeting`` (``refused to talk to me``),
    ``local`` (Postfix's own text, relay=MX) or ``none`` (Postfix's own text, relay=none).
    """

    weight: float
    status: str
    dsn: str
    text: str  # str.format fields: ip (ours), rcpt, domain, mx, mxip, tid
    reason: str
    kind: str = "said"
    command: str = "RCPT TO"


@dataclass(frozen=True, slots=True)
class Operator:
    name: str
    weight: float
    domains: tuple[str, ...]
    mx: tuple[str, ...]  # "*" stands for the domain with dots as dashes (M365 tenants)
    ips: tuple[str, ...]
    sent: str
    fail_rate: float
    failures: tuple[Reply, ...]
    dead: bool = False  # every attempt fails the same way until the message expires
    seeds: bool = True  # probe mailboxes (seed-...) exist at this operator


def _r(
    weight: float,
    status: str,
    dsn: str,
    text: str,
    reason: str,
    kind: str = "said",
    command: str = "RCPT TO",
) -> Reply:
    return Reply(weight, status, dsn, text, reason, kind, command)


# fmt: off
_GSMTP = " {tid} - gsmtp"
_MS_TRACE = " [{tid}.prod.outlook.com]"
_GMAIL_FAIL = (
    _r(5, "deferred", "4.7.28",
       "421-4.7.28 [{ip}      15] Our system has detected an unusual rate of "
       "unsolicited mail originating from your IP address. To protect our users from spam, mail "
       "sent from your IP address has been temporarily rate limited. For more information, go to "
       "421-4.7.28  https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our "
       "Bulk Email Senders Guidelines." + _GSMTP, _T, command="end of DATA"),
    _r(2, "deferred", "4.2.1",
       "450-4.2.1 The user you are trying to contact is receiving mail at a "
       "rate that 450-4.2.1 prevents additional messages from being delivered. Please resend "
       "450 4.2.1 your message at a later date." + _GSMTP, _T, command="end of DATA"),
    _r(1, "deferred", "4.7.0", "421-4.7.0 This message is suspicious due to the very low "
       "reputation of the 421-4.7.0 sending domain." + _GSMTP, _R, command="end of DATA"),
    _r(2, "bounced", "5.7.1",
       "550-5.7.1 [{ip}      12] Our system has detected that this message is "
       "550-5.7.1 likely unsolicited mail. To reduce the amount of spam sent to Gmail, this "
       "550-5.7.1 message has been blocked. 550 5.7.1 "
       "https://support.google.com/mail/?p=UnsolicitedMessageError" + _GSMTP, _R,
       command="end of DATA"),
    _r(2, "bounced", "5.7.26",
       "550-5.7.26 This mail is unauthenticated, which poses a security risk "
       "to the 550-5.7.26 sender and Gmail users, and has been blocked. The sender must "
       "authenticate 550-5.7.26 with at least one of SPF or DKIM. For this message, DKIM checks "
       "did not pass 550-5.7.26 and SPF check for [news.shop.example] did not pass with ip: "
       "[{ip}]." + _GSMTP, _A, command="end of DATA"),
    _r(1, "bounced", "5.7.26", "550-5.7.26 Unauthenticated email from news.shop.example is not "
       "accepted due to 550-5.7.26 domain's DMARC policy. Please contact the administrator of "
       "550 5.7.26 news.shop.example domain. ?p=DmarcRejection" + _GSMTP, _A,
       command="end of DATA"),
    _r(6, "bounced", "5.1.1", "550-5.1.1 The email account that you tried to reach does not exist. "
       "Please try 550-5.1.1 double-checking the recipient's email address for typos." + _GSMTP,
       _U),
    _r(1, "bounced", "5.2.1", "550-5.2.1 The email account that you tried to reach is disabled."
       + _GSMTP, _U),
    _r(1, "deferred", "4.2.2", "452-4.2.2 The recipient's inbox is out of storage space. Please "
       "direct the 452-4.2.2 recipient to https://support.google.com/mail/?p=OverQuotaTemp"
       + _GSMTP, _F),
    _r(1, "deferred", "4.4.2", "lost connection with {mx}[{mxip}] while sending end of data -- "
       "message may be sent more than once", _C, "local"),
)
_MS_FAIL = (
    _r(4, "deferred", "4.7.650", "451 4.7.650 The mail server [{ip}] has been temporarily rate "
       "limited due to IP reputation. For e-mail delivery information, see "
       "https://postmaster.live.com (S775)" + _MS_TRACE, _T, command="MAIL FROM"),
    _r(1, "deferred", "4.7.651", "451 4.7.651 The mail server [{ip}] has been temporarily rate "
       "limited due to IP reputation. For e-mail delivery information, see "
       "https://postmaster.live.com (S844)" + _MS_TRACE, _T, command="MAIL FROM"),
    _r(2, "bounced", "5.7.1", "550 5.7.1 Unfortunately, messages from [{ip}] weren't sent. Please "
       "contact your Internet service provider since part of their network is on our block list "
       "(S3150). You can also refer your provider to "
       "http://mail.live.com/mail/troubleshooting.aspx#errors." + _MS_TRACE, _R,
       command="MAIL FROM"),
    _r(1, "bounced", "5.7.1",
       "550 5.7.1 Service unavailable, MailFrom domain is listed in Spamhaus. "
       "To request removal from this list see https://www.spamhaus.org/query/lookup/ (S8002)"
       + _MS_TRACE, _R, command="MAIL FROM"),
    _r(1, "bounced", "5.7.515",
       "550 5.7.515 Access denied, sending domain news.shop.example doesn't "
       "meet the required authentication level." + _MS_TRACE, _A, command="MAIL FROM"),
    _r(5, "bounced", "5.5.0", "550 5.5.0 Requested action not taken: mailbox unavailable "
       "(S2017062302)." + _MS_TRACE, _U),
    _r(1, "deferred", "4.2.2", "452 4.2.2 The recipient's mailbox is full and can't accept "
       "messages now." + _MS_TRACE, _F),
)
_M365_FAIL = (
    _r(3, "bounced", "5.4.1", "550 5.4.1 Recipient address rejected: Access denied. For more "
       "information see https://aka.ms/EXOSmtpErrors" + _MS_TRACE, _U),
    _r(1, "bounced", "5.7.708", "550 5.7.708 Service unavailable. Access denied, traffic not "
       "accepted from this IP. For more information please go to "
       "http://go.microsoft.com/fwlink/?LinkId=526653 AS(7171)" + _MS_TRACE, _R,
       command="MAIL FROM"),
    *_MS_FAIL[:2],
)
MS_BLOCKED = (  # the story: the msft transport's IP is on Microsoft's block list
    _r(6, "bounced", "5.7.1", _MS_FAIL[2].text, _R, command="MAIL FROM"),
    _r(2, "bounced", "5.7.606", "550 5.7.606 Access denied, banned sending IP [{ip}]. To request "
       "removal from this list please visit https://sender.office.com/ and follow the "
       "directions. AS(1430)" + _MS_TRACE, _R, command="MAIL FROM"),
    _r(1, "bounced", "5.7.511", "550 5.7.511 Access denied, banned sender[{ip}]. To request "
       "removal from this list, forward this message to delist@microsoft.com." + _MS_TRACE, _R,
       command="MAIL FROM"),
    _r(3, "deferred", "4.7.650", _MS_FAIL[0].text, _T, command="MAIL FROM"),
)
_OTHER_FAIL = (
    _r(3, "deferred", "4.2.0", "450 4.2.0 <{rcpt}>: Recipient address rejected: Greylisted, see "
       "http://postgrey.schweikert.ch/help/{domain}.html", _T),
    _r(2, "bounced", "5.7.1", "554 5.7.1 Service unavailable; Client host [{ip}] blocked using "
       "zen.spamhaus.org; https://www.spamhaus.org/query/ip/{ip}", _R),
    _r(5, "bounced", "5.1.1", "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in "
       "virtual mailbox table", _U),
    _r(1, "bounced", "5.2.2", "552 5.2.2 <{rcpt}>: Recipient address rejected: Mailbox is over "
       "quota", _F),
    _r(2, "deferred", "4.4.1", "connect to {mx}[{mxip}]:25: Connection refused", _C, "none"),
    _r(1, "deferred", "4.4.3", "Host or domain name not found. Name service error for "
       "name={domain} type=MX: Host not found, try again", _D, "none"),
    _r(1, "deferred", "4.4.4", "unable to look up host {mx}: Temporary failure in name "
       "resolution", _D, "none"),
    _r(1, "deferred", "4.0.0", "host {mx}[{mxip}] refused to talk to me: 554 {mx} ESMTP not "
       "accepting connections from {ip}", _G, "greeting"),
    _r(1, "bounced", "5.3.4", "552 5.3.4 Message size exceeds fixed maximum message size", _O,
       command="end of DATA"),
)
_SENT = "250 2.0.0 Ok: queued as {hex}"
_G_IPS = ("142.250.27.26", "142.251.9.27", "64.233.184.27", "2607:f8b0:400d:c0e::1a")
OPERATORS: Final[tuple[Operator, ...]] = (
    Operator("gmail", 28, ("gmail.com", "googlemail.com"), ("gmail-smtp-in.l.google.com",
             "alt1.gmail-smtp-in.l.google.com"), _G_IPS, "250 2.0.0 OK  {epoch}" + _GSMTP,
             0.06, _GMAIL_FAIL),
    Operator("google-workspace", 8, ("acme-widgets.example", "northwind.example"),
             ("aspmx.l.google.com", "alt1.aspmx.l.google.com"), _G_IPS,
             "250 2.0.0 OK  {epoch}" + _GSMTP, 0.05, _GMAIL_FAIL),
    Operator("outlook", 12, ("outlook.com", "hotmail.com", "live.com", "msn.com"),
             ("outlook-com.olc.protection.outlook.com", "hotmail-com.olc.protection.outlook.com"),
             ("52.101.42.2", "104.47.57.161", "52.101.8.33"),
             "250 2.6.0 <{hex}@news.shop.example> [InternalId={epoch}, Hostname={tid}] Queued "
             "mail for delivery", 0.06, _MS_FAIL),
    Operator("m365", 7, ("contoso.example", "fabrikam.example", "tailspin.example"),
             ("*.mail.protection.outlook.com",), ("52.101.68.15", "104.47.18.202"),
             "250 2.6.0 <{hex}@news.shop.example> [InternalId={epoch}, Hostname={tid}] Queued "
             "mail for delivery", 0.05, _M365_FAIL),
    Operator("yahoo", 11, ("yahoo.com", "aol.com", "ymail.com", "rocketmail.com"),
             ("mta5.am0.yahoodns.net", "mta6.am0.yahoodns.net", "mta7.am0.yahoodns.net"),
             ("67.195.228.110", "98.136.96.76", "67.195.204.72"), "250 ok dirdel", 0.08, (
        _r(6, "deferred", "4.7.0", "421 4.7.0 [TSS04] Messages from {ip} temporarily deferred due "
           "to unexpected volume or user complaints - 4.16.55.1; see "
           "https://postmaster.yahooinc.com/error-codes", _T, "session", "MAIL FROM"),
        _r(1, "deferred", "4.0.0", "421 [IPTS04] Messages from {ip} temporarily deferred due to "
           "user complaints - 4.16.55.1; see https://help.yahoo.com/kb/postmaster/SLN3434.html",
           _T, "session", "MAIL FROM"),
        _r(1, "bounced", "5.7.2", "553 5.7.2 [TSS09] All messages from {ip} will be permanently "
           "deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com/error-codes",
           _R, command="MAIL FROM"),
        _r(1, "bounced", "5.7.9", "554 5.7.9 Message not accepted for policy reasons.  See "
           "https://help.yahoo.com/kb/postmaster/SLN7253.html", _R, command="end of DATA"),
        _r(1, "bounced", "5.7.1", "553 5.7.1 [BL21] Connections will not be accepted from {ip}, "
           "because the ip is in Spamhaus's list; see https://postmaster.yahooinc.com/error-codes",
           _R, command="MAIL FROM"),
        _r(5, "bounced", "5.0.0",
           "554 delivery error: dd This user doesn't have a {domain} account "
           "({rcpt}) [-5] - mta4012.mail.gq1.yahoo.com", _U, command="end of DATA"),
        _r(1, "bounced", "5.0.0", "554 delivery error: dd This mailbox is disabled (554.30) - "
           "mta4012.mail.gq1.yahoo.com", _U, command="end of DATA"),
    )),
    Operator("icloud", 5, ("icloud.com", "me.com", "mac.com"),
             ("mx01.mail.icloud.com", "mx02.mail.icloud.com"), ("17.57.155.24", "17.42.251.41"),
             _SENT, 0.05, (
        _r(2, "bounced", "5.7.1", "554 5.7.1 [CS01] Message rejected due to local policy. Please "
           "visit https://support.apple.com/en-us/HT204137", _R, command="end of DATA"),
        _r(1, "bounced", "5.7.0", "550 5.7.0 Blocked - see "
           "https://support.proofpoint.com/dnsbl-lookup.cgi?ip={ip}", _R),
        _r(1, "deferred", "4.7.0", "host {mx}[{mxip}] refused to talk to me: 554 5.7.0 Blocked - "
           "see https://support.proofpoint.com/dnsbl-lookup.cgi?ip={ip}", _G, "greeting"),
        _r(2, "deferred", "4.7.1", "421 4.7.1 Messages to {rcpt} deferred due to excessive volume. "
           "Try again later - https://support.apple.com/en-us/HT204137", _T),
        _r(3, "bounced", "5.1.1", "550 5.1.1 <{rcpt}>: user does not exist", _U),
    )),
    Operator("comcast", 3, ("comcast.net",), ("mx1a1.comcast.net", "mx2c1.comcast.net"),
             ("96.114.157.80", "68.87.20.5"), "250 2.0.0 {tid} mail accepted for delivery", 0.08, (
        _r(2, "bounced", "5.0.0", "554 resimta-po-22v.sys.comcast.net comcast {ip} Comcast block "
           "for spam.  Please see http://postmaster.comcast.net/smtp-error-codes.php#BL000000",
           _R, command="MAIL FROM"),
        _r(1, "bounced", "5.0.0",
           "554 resimta-po-22v.sys.comcast.net comcast {ip} Comcast requires "
           "that all mail servers must have a PTR record with a valid Reverse DNS entry.", _R,
           command="MAIL FROM"),
        _r(2, "deferred", "4.0.0", "421 resimta-po-22v.sys.comcast.net comcast {ip} Too many "
           "sessions opened. Please see http://postmaster.comcast.net/smtp-error-codes.php#RL000001",
           _T, command="MAIL FROM"),
        _r(2, "bounced", "5.1.1", "550 5.1.1 <{rcpt}> Not our Customer", _U),
    )),
    Operator("cox", 2, ("cox.net",), ("cxr.mx.a.cloudfilter.net",), ("68.99.120.4",),
             "250 2.0.0 {tid} mail accepted for delivery", 0.08, (
        _r(2, "bounced", "5.0.0", "554 cmsmtp {ip} blocked. Refer to Error Codes section at "
           "https://www.cox.com/residential/support/email-error-codes.html for more information. "
           "AUP#CXBL", _R, command="MAIL FROM"),
        _r(2, "deferred", "4.0.0", "421 cmsmtp {ip} blocked. Too many concurrent connections. "
           "AUP#CXCNCT", _T, command="MAIL FROM"),
        _r(1, "deferred", "4.0.0", "421 cmsmtp {ip} temporarily blocked. AUP#CDRBL", _R,
           command="MAIL FROM"),
    )),
    Operator("gmx", 4, ("gmx.net", "gmx.de", "web.de", "mail.com"),
             ("mx00.emig.gmx.net", "mx01.emig.gmx.net"), ("212.227.15.9", "212.227.17.5"),
             "250 Requested mail action okay, completed: id={tid}", 0.07, (
        _r(3, "deferred", "4.0.0",
           "host {mx}[{mxip}] refused to talk to me: 554-gmx.net (mxgmx116) "
           "Nemesis ESMTP Service not available 554-No SMTP service 554-IP address is black "
           "listed. 554 For explanation visit "
           "https://postmaster.gmx.net/en/error-messages?ip={ip}&c=bip", _G, "greeting"),
        _r(1, "deferred", "4.0.0",
           "host {mx}[{mxip}] refused to talk to me: 554-gmx.net (mxgmx116) "
           "Nemesis ESMTP Service not available 554-No SMTP service 554-Bad DNS PTR resource "
           "record. 554 For explanation visit "
           "https://postmaster.gmx.net/en/error-messages?ip={ip}&c=rdns", _G, "greeting"),
        _r(1, "deferred", "4.4.2", "conversation with {mx}[{mxip}] timed out while receiving the "
           "initial server greeting", _C, "local"),
        _r(3, "bounced", "5.0.0", "550 Requested action not taken: mailbox unavailable", _U),
        _r(1, "bounced", "5.0.0", "552 Requested mail action aborted: exceeded storage allocation",
           _F, command="end of DATA"),
    )),
    Operator("mimecast", 3, ("globex.example", "initrode.example"),
             ("eu-smtp-inbound-1.mimecast.com", "eu-smtp-inbound-2.mimecast.com"),
             ("195.130.217.211", "91.220.42.211"), "250 Ok - queued as {tid}", 0.08, (
        _r(2, "bounced", "5.0.0", "550 Rejected by header based Anti-Spoofing policy: {rcpt} - "
           "https://community.mimecast.com/docs/DOC-1369#550 [{tid}.uk412]", _R,
           command="end of DATA"),
        _r(1, "bounced", "5.0.0", "550 Administrative prohibition - envelope blocked - "
           "https://community.mimecast.com/docs/DOC-1369#550 [{tid}.uk412]", _R),
        _r(1, "deferred", "4.0.0", "451 Internal resource temporarily unavailable - "
           "https://community.mimecast.com/docs/DOC-1369#451 [{tid}.uk412]", _T),
        _r(2, "bounced", "5.0.0", "550 Invalid Recipient - "
           "https://community.mimecast.com/docs/DOC-1369#550 [{tid}.uk412]", _U),
    ), seeds=False),
    Operator("proofpoint", 3, ("initech.example", "umbrella.example"),
             ("mx0a-00123456.pphosted.com", "mx0b-00123456.pphosted.com"),
             ("148.163.156.1", "67.231.148.12"), "250 2.0.0 {tid} Message accepted for delivery",
             0.08, (
        _r(2, "bounced", "5.7.0", "550 5.7.0 Blocked - see https://ipcheck.proofpoint.com/?ip={ip}",
           _R),
        _r(1, "bounced", "5.7.1", "554 5.7.1 <{rcpt}>: Relay access denied", _R),
        _r(2, "bounced", "5.1.1", "550 5.1.1 <{rcpt}>... User unknown", _U),
    ), seeds=False),
    Operator("barracuda", 1, ("hooli.example",), ("d123456a.ess.barracudanetworks.com",),
             ("209.222.82.252",), _SENT, 0.1, (
        _r(1, "bounced", "5.0.0", "554 rejected due to spam URL in content", _R,
           command="end of DATA"),
        _r(1, "bounced", "5.0.0", "550 rejecting spoofed message", _R, command="end of DATA"),
        _r(1, "bounced", "5.1.1", "550 cuda_nsu 5.1.1 <{rcpt}>... User unknown", _U),
        _r(2, "deferred", "4.7.1", "451 4.7.1 <{rcpt}>: Recipient address rejected: Greylisted for "
           "5 minutes", _T),
    ), seeds=False),
    Operator("cisco", 1, ("wayne.example",), ("esa1.wayne.iphmx.com",), ("68.232.135.10",),
             "250 ok:  Message {epoch} accepted", 0.1, (
        _r(1, "bounced", "5.0.0", "550 #5.7.1 SPF unauthorized mail is prohibited.", _A,
           command="MAIL FROM"),
        _r(1, "deferred", "4.0.0", "451 #4.4.3 Temporary error occurred during SPF verification.",
           _T, command="MAIL FROM"),
        _r(1, "bounced", "5.0.0", "550 #5.1.0 Address rejected.", _O),
    ), seeds=False),
    Operator("bell", 1, ("sympatico.ca", "bell.net"), ("mxmta.owm.bell.net",), ("209.71.212.20",),
             _SENT, 0.06, (
        _r(1, "deferred", "4.7.0", "421 4.7.0 Too many connections from your IP, try again later",
           _T, command="MAIL FROM"),
        _r(1, "bounced", "5.1.1", "550 5.1.1 <{rcpt}> recipient rejected: no such user", _U),
    )),
    Operator("other", 6, ("smallbiz.example", "example.org", "riverside-dental.example"),
             ("mail.{domain}", "mx.{domain}"), ("203.0.113.7", "203.0.113.45"), _SENT, 0.1,
             _OTHER_FAIL, seeds=False),
    Operator("null-mx", 0.2, ("no-mail.example",), ("none",), ("192.0.2.254",), _SENT, 1.0, (
        _r(1, "bounced", "5.1.10", "{domain} does not accept mail (nullMX)", _D, "none"),
    ), seeds=False),
    Operator("dead", 0.3, ("defunct-shop.example",), ("mx.defunct-shop.example",),
             ("198.51.100.200",), _SENT, 1.0, (
        _r(1, "deferred", "4.4.1", "connect to {mx}[{mxip}]:25: Connection timed out", _C, "none"),
    ), dead=True, seeds=False),
    Operator("internal", 2, ("int.example",), ("mailhub.int.example",), ("10.0.0.25",), _SENT,
             0.0, (), seeds=False),
)
INTERNAL: Final = OPERATORS[-1]


@dataclass(frozen=True, slots=True)
class Instance:
    """A sending Postfix instance; ``msft`` is the syslog name of its Microsoft transport."""

    host: str
    name: str
    ip: str
    weight: float
    senders: tuple[str, ...]
    smtp: str
    long_ids: bool = False
    msft: str = ""
    msft_ip: str = ""


_NEWS = ("news@news.shop.example", "offers@news.shop.example")
FLEET: Final[tuple[Instance, ...]] = (
    Instance("out05", "postfix-out05", "192.0.2.15", 3, _NEWS, "postfix-out05/smtp"),
    Instance("out06", "postfix-out06", "192.0.2.16", 3, _NEWS, "postfix-out06/smtp"),
    Instance("out07", "postfix-out07", "192.0.2.17", 3, _NEWS, "postfix-out07/smtp",
             msft=STORY_NAME, msft_ip="192.0.2.27"),
    Instance("hc01", "postfix-hc", "198.51.100.10", 2, ("noreply@shop.example",
             "orders@shop.example"), "postfix-hc/smtp", long_ids=True),
    Instance("relay1", "postfix", "198.51.100.20", 1, ("alerts@ops.shop.example",),
             "postfix/relay/smtp"),
)
NAMES = ("anna", "ben", "carla", "dmitri", "emma", "femi", "grace", "hiro", "ines", "jonas",
         "kai", "lena", "mateo", "nora", "omar", "priya", "quinn", "rosa", "sven", "tara")
# fmt: on
