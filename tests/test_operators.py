"""Receiving-operator classification: every row of shared/reference/mx-operators.md, written out
as real MX host names, plus the matching rules (label boundary, most specific pattern, segments),
MX sets (lowest preference, disagreement, null MX), Postfix relay values and user rules."""

from __future__ import annotations

import itertools

import pytest

from inboxops.errors import ConfigError
from inboxops.operators import OPERATORS, RULES, Classifier, parse_user_rules, relay_host

# host -> "operator" or "operator/segment", one block per row of mx-operators.md
TABLE: dict[str, str] = {
    # Google: Gmail consumer (+altN.) vs Workspace
    "gmail-smtp-in.l.google.com": "google/consumer",
    "alt1.gmail-smtp-in.l.google.com": "google/consumer",
    "alt4.gmail-smtp-in.l.google.com": "google/consumer",
    "aspmx.l.google.com": "google/workspace",
    "alt1.aspmx.l.google.com": "google/workspace",
    "alt2.aspmx.l.google.com": "google/workspace",
    "aspmx2.googlemail.com": "google/workspace",
    "aspmx3.googlemail.com": "google/workspace",
    "smtp.google.com": "google/workspace",
    "mx.google.com": "google/workspace",  # generic google.com
    # Microsoft 365 (business): protection.outlook.com, mx.microsoft (2024-03+), legacy eo
    "contoso-com.mail.protection.outlook.com": "microsoft/365",
    "contoso-com.o-v1.mx.microsoft": "microsoft/365",
    "example-org.a3f9k2.mx.microsoft": "microsoft/365",
    "contoso-com.mail.eo.outlook.com": "microsoft/365",
    # Outlook.com consumer
    "outlook-com.olc.protection.outlook.com": "microsoft/consumer",
    "hotmail-com.olc.protection.outlook.com": "microsoft/consumer",
    "live-com.olc.protection.outlook.com": "microsoft/consumer",
    "msn-com.olc.protection.outlook.com": "microsoft/consumer",
    "eur.olc.protection.outlook.com": "microsoft/consumer",
    # Yahoo / AOL / Verizon / Rogers; Yahoo small business
    "mta5.am0.yahoodns.net": "yahoo",
    "mta7.am0.yahoodns.net": "yahoo",
    "mx-eu.mail.am0.yahoodns.net": "yahoo",
    "mx-apac.mail.gm0.yahoodns.net": "yahoo",
    "mx-aol.mail.gm0.yahoodns.net": "yahoo",
    "mx-rogers.mail.am0.yahoodns.net": "yahoo",
    "mx-biz.mail.am0.yahoodns.net": "yahoo/business",
    # cox.net before 2024-10-01 (Cloudmark); after, its MX is a yahoodns.net host (above)
    "cxr.mx.a.cloudfilter.net": "cox",
    # comcast.net
    "mx1a1.comcast.net": "comcast",
    "mx1c1.comcast.net": "comcast",
    "mx1h1.comcast.net": "comcast",
    "mx2a1.comcast.net": "comcast",
    "mx2c1.comcast.net": "comcast",
    "mx2h1.comcast.net": "comcast",
    "mx1.comcast.net": "comcast",
    "mx2.comcast.net": "comcast",
    # Apple iCloud (also iCloud+ custom domains)
    "mx01.mail.icloud.com": "apple",
    "mx02.mail.icloud.com": "apple",
    # Bell / Sympatico
    "mxmta.owm.bell.net": "bell",
    # AT&T / BellSouth / SBC
    "al-ip4-mx-vip1.prodigy.net": "att",
    "ff-ip4-mx-vip2.prodigy.net": "att",
    # GMX / mail.com / web.de
    "mx00.gmx.net": "gmx",
    "mx01.gmx.net": "gmx",
    "mx00.gmx.com": "gmx",
    "mx00.mail.com": "gmx",
    "mx01.mail.com": "gmx",
    "mx01.web.de": "gmx",
    # Mimecast
    "us-smtp-inbound-1.mimecast.com": "mimecast",
    "eu-smtp-inbound-2.mimecast.com": "mimecast",
    "za-smtp-inbound-1.mimecast.co.za": "mimecast",
    "us-smtp-inbound-1.mimecast-offshore.com": "mimecast",
    # Proofpoint, Proofpoint Essentials
    "mx0a-00123456.pphosted.com": "proofpoint",
    "mx0b-00123456.pphosted.com": "proofpoint",
    "example-com.gslb.pphosted.com": "proofpoint",
    "mx1-us1.ppe-hosted.com": "proofpoint",
    # Barracuda ESS
    "d123456a.ess.barracudanetworks.com": "barracuda",
    # Cisco Secure Email (IronPort)
    "esa1.example.iphmx.com": "cisco",
    "esa2.example-corp.iphmx.com": "cisco",
    # GoDaddy Workspace
    "smtp.secureserver.net": "godaddy",
    "mailstore1.secureserver.net": "godaddy",
    "mailstore1.europe.secureserver.net": "godaddy",
    "mailstore1.asia.secureserver.net": "godaddy",
    # Zoho
    "mx.zoho.com": "zoho",
    "mx2.zoho.com": "zoho",
    "mx3.zoho.com": "zoho",
    "mx.zoho.eu": "zoho",
    "mx.zoho.in": "zoho",
    "mx.zoho.com.au": "zoho",
    "mx.zoho.jp": "zoho",
    "mx.zohomail.com": "zoho",
    # Fastmail
    "in1-smtp.messagingengine.com": "fastmail",
    "in2-smtp.messagingengine.com": "fastmail",
    # Proton
    "mail.protonmail.ch": "proton",
    "mailsec.protonmail.ch": "proton",
    # Yandex: consumer vs Yandex 360
    "mx.yandex.ru": "yandex/consumer",
    "mx.yandex.net": "yandex/360",
    # Mail.ru / VK WorkSpace
    "mxs.mail.ru": "mailru",
    "emx.mail.ru": "mailru",
    # QQ / Tencent
    "mx1.qq.com": "qq",
    "mx2.qq.com": "qq",
    "mx3.qq.com": "qq",
    # NetEase 163 / 126
    "163mx01.mxmail.netease.com": "netease",
    # Rackspace
    "mx1.emailsrvr.com": "rackspace",
    "mx2.emailsrvr.com": "rackspace",
    # Broadcom / Symantec MessageLabs
    "cluster1.eu.messagelabs.com": "messagelabs",
    # Forcepoint
    "cluster-a.mailcontrol.com": "forcepoint",
    # Amazon SES / WorkMail inbound
    "inbound-smtp.us-east-1.amazonaws.com": "amazon",
    "inbound-smtp.eu-west-1.amazonaws.com": "amazon",
    # Cloudflare Email Routing
    "route1.mx.cloudflare.net": "cloudflare",
    "route3.mx.cloudflare.net": "cloudflare",
    # EarthLink
    "mx01.oxsus-vadesecure.net": "earthlink",
    # Naver: not verified, so not in the table
    "mx1.naver.com": "other",
}

# hosts that must NOT match: label boundary, suffix anchored at the end, no broad fallbacks
NOT_MATCHED = [
    "evilgoogle.com",
    "google.com.evil.example",
    "gmail-smtp-in.l.google.com.attacker.example",
    "mx.microsoft.example.net",
    "notmx.microsoft",
    "mx1.hotmail.com",  # ends in "mail.com", but not on a label boundary
    "xmail.com",
    "yahoodns.net.example",
    "ec2-198-51-100-7.compute-1.amazonaws.com",  # EC2 running its own MTA is not Amazon mail
    "inbound-smtp.amazonaws.com",  # the region label is missing
    "mx.comcast.net.example",
    "fakepphosted.com",
    "",
]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier()


@pytest.mark.parametrize(("host", "expected"), TABLE.items())
def test_every_row_of_the_reference_table(classifier: Classifier, host: str, expected: str) -> None:
    assert classifier.host(host).label == expected


@pytest.mark.parametrize("host", NOT_MATCHED)
def test_hosts_that_only_look_like_an_operator_are_other(classifier: Classifier, host: str) -> None:
    match = classifier.host(host)
    assert (match.operator, match.pattern, match.matched) == ("other", None, False)


def test_every_built_in_operator_is_exercised_here() -> None:
    covered = {label.split("/")[0] for label in TABLE.values()}
    assert {op.id for op in OPERATORS} <= covered
    required = {
        *("google", "microsoft", "yahoo", "apple", "comcast", "cox", "bell", "att", "gmx"),
        *("mimecast", "proofpoint", "cisco", "barracuda", "godaddy", "zoho", "fastmail"),
        *("proton", "yandex", "mailru", "qq", "netease", "rackspace", "messagelabs"),
        *("forcepoint", "amazon", "cloudflare", "earthlink", "other"),
    }
    assert required <= {op.id for op in OPERATORS}
    assert {r.operator for r in RULES} <= {op.id for op in OPERATORS}


def test_operators_have_a_name_and_a_kind() -> None:
    kinds = {op.id: op.kind for op in OPERATORS}
    assert kinds["google"] == "mailbox_provider"
    assert kinds["proofpoint"] == kinds["mimecast"] == kinds["cisco"] == "security_gateway"
    assert kinds["godaddy"] == "hosting"
    assert all(op.name for op in OPERATORS)


@pytest.mark.parametrize(
    "host",
    ["ASPMX.L.Google.COM", "aspmx.l.google.com.", "  aspmx.l.google.com  ", "Aspmx.L.GOOGLE.com."],
)
def test_host_is_lowercased_and_trailing_dot_dropped(classifier: Classifier, host: str) -> None:
    match = classifier.host(host)
    assert (match.host, match.label) == ("aspmx.l.google.com", "google/workspace")


def test_most_specific_pattern_wins_whatever_the_table_order(classifier: Classifier) -> None:
    # gmail-smtp-in.l.google.com (consumer) beside google.com (workspace)
    assert (
        classifier.host("alt2.gmail-smtp-in.l.google.com").pattern == "gmail-smtp-in.l.google.com"
    )
    assert classifier.host("mx-biz.mail.am0.yahoodns.net").pattern == "mx-biz.mail.am0.yahoodns.net"
    assert classifier.host("x.olc.protection.outlook.com").segment == "consumer"
    assert classifier.host("x.protection.outlook.com").label == "microsoft"  # fallback only


def test_how_says_which_pattern_decided(classifier: Classifier) -> None:
    assert classifier.host("aspmx.l.google.com").how == (
        "aspmx.l.google.com matches aspmx.l.google.com -> google/workspace"
    )
    assert classifier.host("mx.example.org").how == "mx.example.org matches no pattern -> other"


# -- MX sets ---------------------------------------------------------------------------------


def test_workspace_set_is_decided_by_the_lowest_preference(classifier: Classifier) -> None:
    records = [
        (10, "alt3.aspmx.l.google.com"),
        (1, "aspmx.l.google.com"),
        (5, "alt1.aspmx.l.google.com"),
        (5, "alt2.aspmx.l.google.com"),
        (10, "alt4.aspmx.l.google.com"),
    ]
    result = classifier.mx_set(records)
    assert (result.outcome, result.operator, result.segment) == ("matched", "google", "workspace")
    assert result.host == "aspmx.l.google.com"
    assert result.pattern == "aspmx.l.google.com"
    assert (
        result.how
        == "mx aspmx.l.google.com matches aspmx.l.google.com -> google/workspace (preference 1)"
    )
    assert result.contested == ()
    assert result.matches[0].host == "aspmx.l.google.com"
    assert len(result.matches) == 5


def test_a_backup_mx_does_not_decide(classifier: Classifier) -> None:
    result = classifier.mx_set([(20, "us-smtp-inbound-1.mimecast.com"), (10, "mail.example.org")])
    assert (result.outcome, result.operator, result.host) == ("other", "other", "mail.example.org")
    assert [m.operator for m in result.matches] == ["other", "mimecast"]  # all records kept


def test_disagreeing_lowest_hosts_are_decided_deterministically(classifier: Classifier) -> None:
    records = [
        (10, "mx0a-001.pphosted.com"),
        (10, "us-smtp-inbound-1.mimecast.com"),
        (20, "mx.zoho.com"),
    ]
    results = {classifier.mx_set(p) for p in itertools.permutations(records)}
    assert len(results) == 1  # the same answer whatever order DNS returned
    result = results.pop()
    assert result.operator == "mimecast"  # equal hosts: first operator id alphabetically
    assert result.contested == ("proofpoint",)
    assert "splits between mimecast, proofpoint" in result.how
    assert "equal hosts, first by id" in result.how


def test_known_operator_beats_unmatched_and_majority_beats_minority(classifier: Classifier) -> None:
    known = classifier.mx_set([(10, "backup.example.org"), (10, "x.mail.protection.outlook.com")])
    assert (known.operator, known.segment, known.contested) == ("microsoft", "365", ("other",))
    assert "a known operator over unmatched hosts" in known.how
    # even where the unmatched hosts are more, or 'other' sorts first
    yahoo = classifier.mx_set(
        [(10, "b.example.org"), (10, "a.example.org"), (10, "mta5.am0.yahoodns.net")]
    )
    assert (yahoo.operator, yahoo.host, yahoo.contested) == (
        "yahoo",
        "mta5.am0.yahoodns.net",
        ("other",),
    )
    majority = classifier.mx_set(
        [(5, "mx0a-1.pphosted.com"), (5, "mx0b-1.pphosted.com"), (5, "esa1.x.iphmx.com")]
    )
    assert (majority.operator, majority.host) == ("proofpoint", "mx0a-1.pphosted.com")
    assert "more hosts" in majority.how


def test_null_mx_is_its_own_outcome(classifier: Classifier) -> None:
    result = classifier.mx_set([(0, ".")])
    assert (result.outcome, result.operator, result.host) == ("null_mx", None, None)
    mixed = classifier.mx_set([(0, "."), (10, "mx1.comcast.net")])
    assert (mixed.outcome, mixed.operator) == ("matched", "comcast")
    assert "null MX" in mixed.how
    empty = classifier.mx_set([])
    assert (empty.outcome, empty.operator) == ("no_mx", None)


def test_domain_moving_to_yahoo_changes_its_operator(classifier: Classifier) -> None:
    before = classifier.mx_set([(10, "cxr.mx.a.cloudfilter.net")])
    after = classifier.mx_set([(1, "mx-aol.mail.gm0.yahoodns.net")])
    assert (before.operator, after.operator) == ("cox", "yahoo")


# -- Postfix relay values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relay", "host"),
    [
        ("relay=gmail-smtp-in.l.google.com[142.250.27.26]:25", "gmail-smtp-in.l.google.com"),
        ("gmail-smtp-in.l.google.com[142.250.27.26]:25,", "gmail-smtp-in.l.google.com"),
        ("relay=mx.example.org[2001:db8::25]:25", "mx.example.org"),
        ("relay=Mail.Example.ORG[192.0.2.1]", "mail.example.org"),
        ("relay=none", None),
        ("relay=local", None),
        ("relay=private/dovecot-lmtp", None),
        ("relay=mail.example.org[private/dovecot-lmtp]", "mail.example.org"),
        ("relay=192.0.2.7[192.0.2.7]:25", None),
        ("relay=[192.0.2.7]:25", None),
        ("relay=[2001:db8::1]:25", None),
        ("relay=", None),
    ],
)
def test_relay_host_from_postfix_log(relay: str, host: str | None) -> None:
    assert relay_host(relay) == host


def test_relay_classifies_with_the_same_matcher(classifier: Classifier) -> None:
    match = classifier.relay("relay=alt1.gmail-smtp-in.l.google.com[142.250.27.26]:25")
    assert match is not None
    assert match.label == "google/consumer"
    assert classifier.relay("relay=198.51.100.4[198.51.100.4]:25") is None
    assert classifier.relay("relay=none") is None


def test_host_lookups_are_memoised_and_bounded() -> None:
    classifier = Classifier(cache_size=3)
    first = classifier.host("mx1.comcast.net")
    assert classifier.host("mx1.comcast.net") is first
    for n in range(10):
        classifier.host(f"mx{n}.example.org")
    assert len(classifier._cache) <= 3
    assert classifier.host("mx1.comcast.net") == first


# -- user rules --------------------------------------------------------------------------------


def test_user_rules_add_operators_and_segments() -> None:
    classifier = Classifier(
        {
            "acme": ["mx.acme-mail.example"],
            "google/workspace": ["inbound.google-partner.example"],
            "bigcorp": {"patterns": ["mx.*.bigcorp.example"], "name": "BigCorp", "kind": "hosting"},
        }
    )
    assert classifier.host("eu.mx.acme-mail.example").label == "acme"
    assert classifier.host("eu.mx.acme-mail.example").source == "user"
    assert classifier.host("inbound.google-partner.example").label == "google/workspace"
    assert classifier.host("mx.eu.bigcorp.example").label == "bigcorp"
    assert classifier.host("mx.bigcorp.example").label == "other"  # '*' needs one label
    assert classifier.operators["bigcorp"].kind == "hosting"
    assert classifier.operators["acme"].name == "acme"
    assert "(user rule)" in classifier.host("mx.acme-mail.example").how


def test_user_rule_wins_on_equal_length_but_not_over_a_longer_built_in() -> None:
    classifier = Classifier({"acme": ["google.com"], "google/consumer": ["aspmx.l.google.com"]})
    assert classifier.host("mx.google.com").label == "acme"  # same pattern: user wins
    assert classifier.host("alt1.aspmx.l.google.com").label == "google/consumer"
    # the built-in gmail-smtp-in.l.google.com is longer than the user's google.com
    assert classifier.host("gmail-smtp-in.l.google.com").label == "google/consumer"
    assert Classifier().host("mx.google.com").label == "google/workspace"  # built-ins untouched


def test_a_single_string_is_one_pattern() -> None:
    rules, ops = parse_user_rules({"acme": "mx.acme.example"})
    assert [r.pattern for r in rules] == ["mx.acme.example"]
    assert [op.id for op in ops] == ["acme"]


@pytest.mark.parametrize(
    ("rules", "fragment"),
    [
        ({"Acme": ["mx.acme.example"]}, "bad operator id 'Acme'"),
        ({"a" * 33: ["mx.acme.example"]}, f"bad operator id '{'a' * 33}'"),  # columns are 32
        ({"acme/": ["mx.acme.example"]}, "bad segment ''"),
        ({"acme/Big Segment": ["mx.acme.example"]}, "bad segment 'Big Segment'"),
        ({"acme": []}, "non-empty list"),
        ({"acme": [""]}, "pattern ''"),
        ({"acme": ["com"]}, "pattern 'com' is one label"),
        ({"acme": ["mx..acme.example"]}, "pattern 'mx..acme.example' has an empty label"),
        ({"acme": [".acme.example"]}, "pattern '.acme.example' has an empty label"),
        ({"acme": ["*.com"]}, "pattern '*.com' is too broad"),
        ({"acme": ["acme.*"]}, "pattern 'acme.*' is too broad"),
        ({"acme": ["mx*.acme.example"]}, "invalid label 'mx*'"),
        ({"acme": ["bücher.example"]}, "pattern 'bücher.example' is not ASCII"),
        ({"acme": ["192.0.2.1"]}, "pattern '192.0.2.1' ends in a number"),
        ({"acme": [5]}, "pattern 5 is not a string"),
        ({"google": {"patterns": ["x.example"], "name": "G"}}, "'google' is built in"),
        ({"acme": {"patterns": ["x.example"], "kind": "bank"}}, "kind 'bank' is not one of"),
        ({"acme": {"patterns": ["x.example"], "colour": "red"}}, "unknown key(s) ['colour']"),
        ({"acme": ["x.example"], "beta": ["X.Example."]}, "pattern 'x.example' is given for both"),
        (["acme"], "must be a table"),
    ],
)
def test_bad_user_rules_raise_config_error_naming_the_problem(rules: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Classifier(rules)  # type: ignore[arg-type]
    assert fragment in str(excinfo.value)
    assert excinfo.value.exit_code == 2
