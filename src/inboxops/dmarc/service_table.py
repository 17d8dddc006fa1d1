"""The built-in map of sending services, as data: which PTR names belong to whom.

Written for inboxops from public knowledge: the host names these services put in the reverse
DNS of their outbound IPs (visible in any mail's ``Received:`` headers), their documented SPF
includes, and their own deliverability docs. Patterns are matched as
:mod:`inboxops.dmarc.services` describes (a domain matches itself and every name below it; a
glob matches the whole name). Extend or override it in ``[[dmarc.services]]``; a user entry
wins over a built-in one.

Types: ``esp`` (sends bulk or transactional mail for customers), ``mailbox_provider`` (people's
mailboxes; also where a user's own forwarding rule sends from), ``forwarder`` (forwarding
services and institutions whose mail to us is mostly forwarded), ``mailing_list``,
``security_gateway`` (filters in front of other organisations' mailboxes, which also relay
their outbound and forwarded mail), ``saas`` (applications sending notifications on a
customer's behalf), ``hosting`` (cloud and VPS hosts: anyone can rent one).

Keep entries to outbound names a service really uses; a wrong entry mislabels an IP, and a
wrong ``forwarder`` or ``mailing_list`` entry would quiet a spoofer's alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    type: str
    patterns: tuple[str, ...]


def _s(name: str, type_: str, *patterns: str) -> Service:
    return Service(name, type_, patterns)


SERVICES: Final[tuple[Service, ...]] = (
    # -- mailbox providers -----------------------------------------------------------------
    _s("Google (Gmail / Workspace)", "mailbox_provider", "google.com", "1e100.net"),
    # Microsoft 365 and Outlook.com send from mail-*.outbound.protection.outlook.com
    _s("Microsoft 365 / Outlook.com", "mailbox_provider", "outlook.com", "hotmail.com"),
    _s("Yahoo / AOL", "mailbox_provider", "yahoo.com", "yahoo.net", "yahoodns.net", "aol.com"),
    _s("Apple iCloud", "mailbox_provider", "icloud.com", "me.com", "mac.com"),
    _s("Zoho Mail", "mailbox_provider", "zoho.com", "zoho.eu", "zoho.in", "zohomail.com"),
    _s("Fastmail", "mailbox_provider", "messagingengine.com", "fastmail.com"),
    _s("Proton Mail", "mailbox_provider", "protonmail.ch", "protonmail.com", "proton.me"),
    _s("GMX / WEB.DE / mail.com", "mailbox_provider", "gmx.net", "gmx.com", "web.de", "mail.com"),
    _s("IONOS (1&1)", "mailbox_provider", "kundenserver.de", "ionos.com", "ionos.de"),
    _s("Yandex Mail", "mailbox_provider", "yandex.net", "yandex.ru"),
    _s("Mail.ru", "mailbox_provider", "mail.ru"),
    _s("Comcast (Xfinity)", "mailbox_provider", "comcast.net"),
    _s("GoDaddy Email", "mailbox_provider", "secureserver.net"),
    _s("OVHcloud Mail", "mailbox_provider", "mail-out.ovh.net"),
    _s("Rackspace Email", "mailbox_provider", "emailsrvr.com"),
    _s("mailbox.org", "mailbox_provider", "mailbox.org"),
    _s("Posteo", "mailbox_provider", "posteo.de", "posteo.net"),
    _s("Deutsche Telekom (T-Online)", "mailbox_provider", "t-online.de"),
    _s("Orange", "mailbox_provider", "orange.fr", "wanadoo.fr"),
    _s("Free (France)", "mailbox_provider", "free.fr"),
    _s("Tencent QQ Mail", "mailbox_provider", "qq.com"),
    _s("NetEase (163.com)", "mailbox_provider", "163.com", "126.com", "netease.com"),
    # -- email service providers ------------------------------------------------------------
    _s("Amazon SES", "esp", "amazonses.com"),
    _s("Twilio SendGrid", "esp", "sendgrid.net"),
    _s("Mailgun", "esp", "mailgun.net", "mailgun.org"),
    _s("Mailchimp", "esp", "mcsv.net", "rsgsv.net", "mcdlv.net"),
    _s("Mandrill (Mailchimp Transactional)", "esp", "mandrillapp.com"),
    _s("Postmark", "esp", "mtasv.net", "postmarkapp.com"),
    _s("SparkPost (Bird)", "esp", "sparkpostmail.com"),
    _s("Salesforce Marketing Cloud (ExactTarget)", "esp", "exacttarget.com"),
    _s("Salesforce Account Engagement (Pardot)", "esp", "pardot.com"),
    _s("HubSpot", "esp", "hubspotemail.net", "hubspot.com", "hubspot.net"),
    _s("Brevo (Sendinblue)", "esp", "sendinblue.com", "brevo.com"),
    _s("Mailjet", "esp", "mailjet.com"),
    _s("Constant Contact", "esp", "constantcontact.com", "ccsend.com", "roving.com"),
    _s("Klaviyo", "esp", "klaviyomail.com", "klaviyo.com"),
    _s("Marketo (Adobe)", "esp", "mktomail.com", "marketo.com"),
    _s("Oracle Responsys", "esp", "responsys.net", "rsys1.net", "rsys2.net", "rsys5.net"),
    _s("Oracle Eloqua", "esp", "en25.com", "eloqua.com"),
    _s("Braze", "esp", "braze.com", "braze.eu"),
    _s("Iterable", "esp", "iterable.com"),
    _s("Customer.io", "esp", "customer.io", "customeriomail.com"),
    _s("Campaign Monitor", "esp", "createsend.com", "cmail19.com", "cmail20.com"),
    _s("ActiveCampaign", "esp", "activecampaign.com"),
    _s("MailerLite", "esp", "mlsend.com", "mailerlite.com"),
    _s("GetResponse", "esp", "getresponse.com", "getresponse.net"),
    _s("AWeber", "esp", "aweber.com"),
    _s("Sailthru (Marigold)", "esp", "sailthru.com"),
    _s("Elastic Email", "esp", "elasticemail.com"),
    _s("SMTP2GO", "esp", "smtp2go.com", "smtpcorp.com"),
    _s("SocketLabs", "esp", "socketlabs.com", "email-od.com"),
    _s("Zoho ZeptoMail", "esp", "zeptomail.com", "zeptomail.in", "zeptomail.eu"),
    # -- applications sending on a customer's behalf -----------------------------------------
    _s("Salesforce", "saas", "salesforce.com"),
    _s("Zendesk", "saas", "zendesk.com"),
    _s("Intercom", "saas", "intercom-mail.com", "intercom.io"),
    _s("Freshworks (Freshdesk)", "saas", "freshdesk.com", "freshemail.io", "freshworks.com"),
    _s("Atlassian (Jira / Confluence)", "saas", "atlassian.net", "atlassian.com"),
    _s("GitHub", "saas", "github.com", "github.net"),
    _s("Shopify", "saas", "shopify.com", "shopifyemail.com"),
    _s("Squarespace", "saas", "squarespace.com", "sqsp.net"),
    _s("Wix", "saas", "wix.com"),
    _s("LinkedIn", "saas", "linkedin.com"),
    _s("Meta (Facebook)", "saas", "facebook.com", "facebookmail.com"),
    # -- security gateways (inbound filtering that also relays outbound and forwarded mail) --
    _s("Mimecast", "security_gateway", "mimecast.com", "mimecast-offshore.com", "mimecast.co.za"),
    _s("Proofpoint", "security_gateway", "pphosted.com", "ppe-hosted.com", "proofpoint.com"),
    _s("Barracuda", "security_gateway", "barracudanetworks.com", "barracuda.com"),
    _s("Cisco Secure Email (IronPort)", "security_gateway", "iphmx.com"),
    _s("Trend Micro Email Security", "security_gateway", "trendmicro.com", "trendmicro.eu"),
    _s("Sophos Email", "security_gateway", "sophos.com"),
    _s("Broadcom / Symantec Email Security.cloud", "security_gateway", "messagelabs.com"),
    _s("Forcepoint Email Security", "security_gateway", "mailcontrol.com"),
    _s("Hornetsecurity", "security_gateway", "hornetsecurity.com"),
    # -- forwarding services and institutions that forward ----------------------------------
    _s("Pobox", "forwarder", "pobox.com"),
    _s("Forward Email", "forwarder", "forwardemail.net"),
    _s("ImprovMX", "forwarder", "improvmx.com"),
    _s(
        "University or academic network",
        "forwarder",
        "edu",
        "ac.uk",
        "edu.au",
        "ac.nz",
        "ac.jp",
        "ac.kr",
        "edu.cn",
        "ac.za",
        "ac.in",
        "ac.at",
        "ac.il",
        "edu.br",
    ),
    # -- mailing lists -----------------------------------------------------------------------
    _s("Groups.io", "mailing_list", "groups.io"),
    _s("FreeLists", "mailing_list", "freelists.org"),
    # Generic list-server host names (Mailman, LISTSERV, Sympa). A glob on a host name that
    # anyone with a domain can choose: see docs/dmarc-alert.md before relying on it.
    _s("Mailing list server", "mailing_list", "lists.*", "mailman.*", "listserv.*", "sympa.*"),
    # -- hosting: anyone can rent these, so they say little about who sends ----------------
    _s("Amazon Web Services (EC2)", "hosting", "amazonaws.com"),
    _s("Google Cloud (customer VM)", "hosting", "googleusercontent.com"),
    _s("Microsoft Azure (customer VM)", "hosting", "cloudapp.azure.com", "cloudapp.net"),
    _s("Hetzner", "hosting", "your-server.de", "hetzner.com"),
    _s("OVHcloud", "hosting", "ovh.net", "ovh.ca", "ovh.us"),
    _s("Linode (Akamai)", "hosting", "linode.com", "linodeusercontent.com"),
    _s("Vultr", "hosting", "vultr.com", "vultrusercontent.com"),
    _s("Contabo", "hosting", "contaboserver.net"),
)
