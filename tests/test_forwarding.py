"""Who sends as us, decided without I/O: the service map's matching and precedence, the
forwarding evidence of one record, and the forwarded-or-spoofing verdict on one IP."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from inboxops.config import AlertSettings, ServiceRule, load_settings
from inboxops.config.enrichment import SERVICE_TYPES
from inboxops.dmarc.forwarding import classify, evidence_of, is_ours, reason_list, record_evidence
from inboxops.dmarc.model import IpStat, Source
from inboxops.dmarc.rules import FORWARDING, SPOOFING, evaluate, headline, render_digest
from inboxops.dmarc.service_table import SERVICES
from inboxops.dmarc.services import ServiceMap
from inboxops.errors import ConfigError

OURS = ("example.com",)


# -- the service map --------------------------------------------------------------------------


def test_the_builtin_map_covers_the_common_senders() -> None:
    names = {s.name for s in SERVICES}
    assert len(names) >= 60
    assert {s.type for s in SERVICES} <= set(SERVICE_TYPES)
    patterns = [p for s in SERVICES for p in s.patterns]
    assert len(patterns) == len(set(patterns)), "a pattern belongs to one built-in service"
    assert all(p == p.lower().strip().rstrip(".") for p in patterns)


@pytest.mark.parametrize(
    ("host", "service", "type_"),
    [
        ("mail-ej1-f54.google.com", "Google (Gmail / Workspace)", "mailbox_provider"),
        (
            "mail-am6eur05on2101.outbound.protection.outlook.com",
            "Microsoft 365 / Outlook.com",
            "mailbox_provider",
        ),
        ("a8-30.smtp-out.amazonses.com", "Amazon SES", "esp"),
        ("o1.ptr2913.sendgrid.net", "Twilio SendGrid", "esp"),
        ("mail12.suw91.mcsv.net", "Mailchimp", "esp"),
        ("mail132-5.atl131.mandrillapp.com", "Mandrill (Mailchimp Transactional)", "esp"),
        ("mx0b-00123401.pphosted.com", "Proofpoint", "security_gateway"),
        ("out-25.smtp.github.com", "GitHub", "saas"),
        ("pb-smtp21.pobox.com", "Pobox", "forwarder"),
        ("smtp3.cs.ox.ac.uk", "University or academic network", "forwarder"),
        ("mailrelay.mit.edu", "University or academic network", "forwarder"),
        ("lists.debian.org", "Mailing list server", "mailing_list"),
        ("ec2-3-8-1-2.eu-west-2.compute.amazonaws.com", "Amazon Web Services (EC2)", "hosting"),
        ("MOUT.GMX.NET.", "GMX / WEB.DE / mail.com", "mailbox_provider"),
    ],
)
def test_builtin_matches(host: str, service: str, type_: str) -> None:
    match = ServiceMap().match(host)
    assert match is not None, host
    assert (match.name, match.type, match.source) == (service, type_, "builtin")


@pytest.mark.parametrize(
    "host",
    ["evilsendgrid.net", "sendgrid.net.evil.example", "google.com-mail.example", "", None],
)
def test_domains_match_on_a_label_boundary_only(host: str | None) -> None:
    assert ServiceMap().match(host) is None


def _rule(name: str, type_: str, *patterns: str) -> ServiceRule:
    return ServiceRule(name=name, type=type_, patterns=patterns)


def test_precedence_user_first_then_the_most_specific_pattern() -> None:
    services = ServiceMap(
        [
            _rule("Broad", "other", "example.net"),
            _rule("Relay", "ours", "mta.example.net"),
            _rule("Relay pool", "esp", "*.mta.example.net"),
            _rule("Our SendGrid IPs", "ours", "sendgrid.net"),
            _rule("Our OVH servers", "ours", "ovh.net"),
            _rule("First", "other", "tie.example.org"),
            _rule("Second", "esp", "tie.example.org"),
        ]
    )
    assert services.match("x.example.net").name == "Broad"  # type: ignore[union-attr]
    assert services.match("mta.example.net").name == "Relay"  # type: ignore[union-attr]
    # more labels win: the glob *.mta.example.net is more specific than mta.example.net
    assert services.match("a.mta.example.net").name == "Relay pool"  # type: ignore[union-attr]
    # a user entry beats the built-in one for the same name
    mine = services.match("o1.ptr2.sendgrid.net")
    assert (mine.name, mine.source) == ("Our SendGrid IPs", "user")  # type: ignore[union-attr]
    # ... even when the built-in pattern (mail-out.ovh.net) is more specific
    ovh = services.match("mo1.mail-out.ovh.net")
    assert (ovh.name, ovh.source) == ("Our OVH servers", "user")  # type: ignore[union-attr]
    # a tie goes to the entry listed first
    assert services.match("tie.example.org").name == "First"  # type: ignore[union-attr]
    # the more specific built-in still loses to nothing the user said about it
    assert services.match("a8-30.smtp-out.amazonses.com").name == "Amazon SES"  # type: ignore[union-attr]


def test_globs_cover_the_whole_name() -> None:
    services = ServiceMap([_rule("Pool", "esp", "out-??.example.net", "lists.*")], builtin=False)
    assert services.match("out-07.example.net") is not None
    assert services.match("out-7.example.net") is None
    assert services.match("x.out-07.example.net") is None
    assert services.match("lists.a.example") is not None
    assert services.match("mylists.a.example") is None


def test_user_entries_are_validated_at_load(tmp_path: Path) -> None:
    def load(body: str) -> None:
        path = tmp_path / "inboxops.toml"
        path.write_text(body)
        load_settings(path, env={})

    good = '[[dmarc.services]]\nname = "Relay"\ntype = "OURS"\npatterns = ["MTA.example.com."]\n'
    path = tmp_path / "ok.toml"
    path.write_text(good)
    [rule] = load_settings(path, env={}).dmarc.services
    assert (rule.type, rule.patterns) == ("ours", ("mta.example.com",))
    for body, message in [
        ('[[dmarc.services]]\nname = "X"\ntype = "spammer"\npatterns = ["a.b"]\n', "one of esp"),
        ('[[dmarc.services]]\nname = "X"\npatterns = ["*"]\n', "at least one literal"),
        ('[[dmarc.services]]\nname = "X"\npatterns = ["a b.example"]\n', "host name or glob"),
        ('[[dmarc.services]]\nname = "X"\npatterns = ["bücher.example"]\n', "A-label"),
        ('[[dmarc.services]]\nname = "X"\npatterns = "a.example"\n', "a list like"),
        ('[[dmarc.services]]\ntype = "ours"\npatterns = ["a.example"]\n', "needs a name"),
        ('[[dmarc.services]]\nname = "X"\n', "at least one pattern"),
        ('[[dmarc.services]]\nname = "X"\npattern = ["a.example"]\n', "did you mean patterns"),
        ('[dmarc.alerts]\nforwarding = "loud"\n', "one of digest, alert, off"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load(body)


# -- one record's forwarding evidence ---------------------------------------------------------


@pytest.mark.parametrize(
    ("reasons", "dkim", "spf", "expected"),
    [
        ([("forwarded", None)], [], ["other.example"], "forwarded"),
        ([("Mailing_List", "")], [], [], "mailing_list"),
        ([("trusted_forwarder", None)], [], [], "trusted_forwarder"),
        ([("local_policy", "arc=pass as.1.google.com")], [], [], "local_policy_arc"),
        ([("local_policy", "ARC chain trusted")], [], [], "local_policy_arc"),
        ([("local_policy", "research policy")], [], [], None),  # "arc" inside a word
        ([("local_policy", None)], [], [], None),
        ([("sampled_out", None)], [], [], None),
        ([], ["example.com"], ["lists.university.example"], "dkim_ours_spf_other"),
        ([], ["news.example.com"], ["univ.example"], "dkim_ours_spf_other"),  # a subdomain
        ([], ["example.com"], ["example.com"], None),  # SPF is ours too: not relayed
        ([], ["example.com"], [], None),  # SPF names nobody
        ([], ["example.com"], [""], None),
        ([], ["spoofer.example"], ["spoofer.example"], None),
        ([], ["notexample.com"], ["other.example"], None),  # not a subdomain of ours
    ],
)
def test_record_evidence(
    reasons: list[tuple[str, str | None]], dkim: list[str], spf: list[str], expected: str | None
) -> None:
    assert record_evidence(reasons, dkim, spf, OURS) == expected


def test_stored_reasons_are_read_from_json_text_or_lists() -> None:
    assert reason_list('[["forwarded", null]]') == [("forwarded", None)]
    assert reason_list([["local_policy", "arc=pass"]]) == [("local_policy", "arc=pass")]
    assert reason_list("not json") == []
    assert reason_list(None) == []
    assert is_ours("Mail.Example.COM.", OURS)
    assert not is_ours("", OURS)


# -- the verdict on one IP --------------------------------------------------------------------


def ip(
    failed: int,
    forwarded: int = 0,
    *,
    own: bool = False,
    source: Source | None = None,
    evidence: tuple[str, ...] = (),
) -> IpStat:
    return IpStat(
        "198.51.100.7",
        failed,
        0,
        failed,
        own,
        ("google.com",),
        ("example.com",),
        ("none",),
        forwarded,
        evidence or (("forwarded",) if forwarded else ()),
        source,
    )


LIST = Source("198.51.100.7", "lists.example.org", True, "example.org", "Lists", "mailing_list")


def test_classification_paths() -> None:
    assert classify(ip(100, own=True), 20) == "own"
    assert classify(ip(0), 20) is None
    assert classify(ip(100), 20) == "spoofing"
    assert classify(ip(100, 100), 20) == "forwarded"
    assert classify(ip(100, source=LIST), 20) == "forwarded"  # the service alone
    unconfirmed = replace(LIST, fcrdns=False)
    assert classify(ip(100, source=unconfirmed), 20) == "spoofing"  # a PTR proves nothing
    unknown = replace(LIST, fcrdns=None)
    assert classify(ip(100, source=unknown), 20) == "spoofing"
    esp = replace(LIST, service_type="esp")
    assert classify(ip(100, source=esp), 20) == "spoofing"


def test_forwarded_mail_never_hides_a_spoofer() -> None:
    """Evidence explains messages: 20 unexplained failures are spoofing however many
    forwarded ones the IP also relays; 19 are not enough on their own."""
    assert classify(ip(1020, 1000), 20) == "spoofing"
    assert classify(ip(1019, 1000), 20) == "forwarded"
    assert classify(ip(40, 21), 20) == "forwarded"  # 19 unexplained
    assert classify(ip(40, 20), 20) == "spoofing"  # 20 unexplained


def test_alerts_carry_the_classification_and_the_95_20_boundaries_hold() -> None:
    t = AlertSettings()
    assert evaluate([ip(19)], t) == []
    [spoof] = evaluate([ip(20)], t)
    assert (spoof.kind, spoof.classification) == (SPOOFING, "spoofing")
    [fwd] = evaluate([ip(20, 20)], t)
    assert (fwd.kind, fwd.classification, fwd.forwarded_failed) == (FORWARDING, "forwarded", 20)
    assert evaluate([ip(19, 19)], t) == []  # forwarding has the same threshold
    assert evaluate([ip(20, 20)], replace(t, forwarding="off")) == []
    [mixed] = evaluate([ip(45, 25)], t)  # 20 unexplained: still a spoofer
    assert (mixed.kind, mixed.forwarded_failed) == (SPOOFING, 25)
    assert "25 of them look forwarded" in headline(mixed)


def test_alerts_name_the_ptr_and_the_service() -> None:
    [fwd] = evaluate([ip(30, source=LIST)], AlertSettings())
    assert fwd.evidence == ("service_mailing_list",)
    assert evidence_of(ip(30, source=LIST)) == ("service_mailing_list",)
    text = headline(fwd)
    assert "PTR lists.example.org" in text
    assert "service Lists (mailing_list)" in text
    fake = Source("198.51.100.7", "mail-ot1-f51.google.com", False, "google.com", "Google", "x")
    [spoof] = evaluate([ip(30, source=fake)], AlertSettings())
    assert "PTR mail-ot1-f51.google.com (not forward-confirmed)" in headline(spoof)
    [bare] = evaluate([ip(30, source=Source("198.51.100.7", status="nxdomain"))], AlertSettings())
    assert "no PTR, unknown service" in headline(bare)
    assert spoof.as_json()["ptr"] == "mail-ot1-f51.google.com"
    assert spoof.as_json()["fcrdns"] is False


def test_digest_rendering_escapes_and_lists_each_relay() -> None:
    hostile = replace(LIST, ptr="<b>x</b>.example")
    alerts = evaluate([ip(30, source=hostile)], AlertSettings())
    title, body = render_digest(alerts, window="last 7 days")
    assert title == "inboxops: DMARC forwarding digest, 1 relay"
    assert "&lt;b&gt;x&lt;/b&gt;.example" in body
    assert "<b>x</b>" not in body
    assert "a known mailing list" in body
