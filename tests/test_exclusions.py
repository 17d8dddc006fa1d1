"""The exclusion list: rules, matching, files, and `inboxops exclusions check` as users run it
(operator rules decided from a real DNS server on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from inboxops.config.hygiene import ExclusionSettings
from inboxops.errors import ConfigError
from inboxops.hygiene.exclusions import (
    Exclusions,
    canonical_domain,
    domain_of,
    parse_lines,
    parse_rule,
)
from inboxops.hygiene.sources import excluded_operators, known_operators, load_exclusions
from tests.hygiene_support import run, write_config
from tests.servers.dns import DnsServer


def rules(*texts: str) -> Exclusions:
    return Exclusions(parse_rule(t) for t in texts)


# -- rules and matching (pure) ---------------------------------------------------------------


def test_exact_domain_matches_only_that_domain() -> None:
    ex = rules("icloud.com", "ME.com.")
    assert ex.match_domain("icloud.com") is not None
    assert ex.match_domain("ICloud.COM.") is not None
    assert ex.match_domain("me.com") is not None
    assert ex.match_domain("mail.icloud.com") is None
    assert ex.match_domain("icloud.co") is None
    assert ex.match_domain("noticloud.com") is None


def test_wildcard_matches_subdomains_on_a_label_boundary_only() -> None:
    ex = rules("*.example.com")
    for domain in ("a.example.com", "x.y.example.com", "A.Example.Com."):
        rule = ex.match_domain(domain)
        assert rule is not None, domain
        assert rule.text == "*.example.com"
    for domain in ("example.com", "badexample.com", "a.badexample.com", "example.com.evil"):
        assert ex.match_domain(domain) is None, domain


def test_most_specific_rule_wins() -> None:
    ex = rules("operator:apple", "*.example.com", "*.shop.example.com", "a.shop.example.com")
    assert ex.match("a.shop.example.com", "apple").text == "a.shop.example.com"  # type: ignore[union-attr]
    assert ex.match("b.shop.example.com", "apple").text == "*.shop.example.com"  # type: ignore[union-attr]
    assert ex.match("c.example.com", "apple").text == "*.example.com"  # type: ignore[union-attr]
    assert ex.match("custom.example.net", "apple").text == "operator:apple"  # type: ignore[union-attr]
    assert ex.match("custom.example.net", "google") is None
    assert ex.match("custom.example.net") is None  # an operator rule needs the operator


def test_operator_rules_with_and_without_segment() -> None:
    ex = rules("operator:google/consumer", "operator:yahoo")
    assert ex.needs_operators
    assert ex.match_operator("google", "consumer") is not None
    assert ex.match_operator("google", "workspace") is None
    assert ex.match_operator("google") is None
    assert ex.match_operator("yahoo", "business").text == "operator:yahoo"  # type: ignore[union-attr]
    assert ex.match_operator("other") is None
    assert ex.match_operator(None) is None
    assert not rules("icloud.com").needs_operators


def test_internationalised_domains_compare_in_ascii_form() -> None:
    assert canonical_domain("Bücher.DE.") == "xn--bcher-kva.de"
    assert rules("bücher.de").match_domain("xn--bcher-kva.de") is not None
    assert rules("xn--bcher-kva.de").match_domain("BÜCHER.de") is not None
    assert domain_of("Jane.Doe@Bücher.de") == "xn--bcher-kva.de"
    assert domain_of("icloud.com") == "icloud.com"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("*.", "not a domain"),
        ("*foo.com", "wildcard"),
        ("a.*.com", "wildcard"),
        ("jane@icloud.com", "address"),
        ("localhost", "no dot"),
        ("exa mple.com", "not a domain"),
        ("operator:", "operator:ID"),
        ("operator:Apple Inc", "operator:ID"),
    ],
)
def test_malformed_rules_say_what_is_wrong(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_rule(text)


def test_blocklist_entries_are_the_domain_and_wildcard_rules() -> None:
    ex = rules("icloud.com", "*.example.com", "operator:apple", "icloud.com")
    assert len(ex) == 3  # the duplicate is kept once
    assert ex.blocklist_entries() == ["icloud.com", "*.example.com"]


def test_file_rules_with_comments_and_line_numbers() -> None:
    text = "# consumer\n\nicloud.com\nme.com   # older\n  *.example.com\noperator:apple\n"
    parsed = parse_lines(text, "/etc/x.txt")
    assert [r.text for r in parsed] == ["icloud.com", "me.com", "*.example.com", "operator:apple"]
    assert parsed[1].origin == "/etc/x.txt:4"
    with pytest.raises(ValueError, match=r"/etc/x.txt:2: .*address"):
        parse_lines("icloud.com\njane@me.com\n", "/etc/x.txt")


# -- loading ---------------------------------------------------------------------------------


def test_load_merges_config_and_files_and_checks_operators(tmp_path: Path) -> None:
    one = tmp_path / "one.txt"
    one.write_text("me.com\noperator:apple\n")
    two = tmp_path / "two.txt"
    two.write_text("icloud.com  # again\n*.example.com\n")
    ex = load_exclusions(ExclusionSettings(("icloud.com",), (str(one), str(two))))
    assert [r.text for r in ex.rules] == [
        "icloud.com",
        "me.com",
        "operator:apple",
        "*.example.com",
    ]
    assert ex.rules[0].origin == "[exclusions] rules"
    assert ex.rules[2].origin == f"{one}:2"

    bad = tmp_path / "bad.txt"
    bad.write_text("icloud.com\noperator:aple\n")
    with pytest.raises(ConfigError, match=r"operator:aple .*bad.txt:2.*did you mean apple"):
        load_exclusions(ExclusionSettings((), (str(bad),)))
    with pytest.raises(ConfigError, match="no segment 'gmail'"):
        load_exclusions(ExclusionSettings(("operator:google/gmail",), ()))
    with pytest.raises(ConfigError, match="does not exist"):
        load_exclusions(ExclusionSettings((), (str(tmp_path / "missing.txt"),)))
    # an operator added by [operators] rules is known
    custom = load_exclusions(
        ExclusionSettings(("operator:acme",), ()), {"acme": ("mx.acme-mail.example",)}
    )
    assert custom.needs_operators


def test_excluded_operator_flags_are_checked() -> None:
    known = known_operators()
    assert "other" not in known
    assert [r.text for r in excluded_operators(["google", "google/consumer"], known)] == [
        "operator:google",
        "operator:google/consumer",
    ]
    with pytest.raises(ValueError, match="did you mean google"):
        excluded_operators(["gogle"], known)


# -- inboxops exclusions check ---------------------------------------------------------------


def test_check_names_the_rule_and_exits_3_on_a_match(tmp_path: Path, sqlite_url: str) -> None:
    rules_file = tmp_path / "exclusions.txt"
    rules_file.write_text("# ours\n*.example.com\n")
    config = write_config(tmp_path / "c.toml", [], rules=["icloud.com"], files=[rules_file])
    code, out, _ = run(
        ["exclusions", "check", "Jane@iCloud.com", "a.example.com", "example.com", "--json"],
        config=config,
        db=sqlite_url,
    )
    assert code == 3
    assert [(r["input"], r["rule"], r["origin"]) for r in out] == [
        ("Jane@iCloud.com", "icloud.com", "[exclusions] rules"),
        ("a.example.com", "*.example.com", f"{rules_file}:2"),
        ("example.com", None, None),
    ]
    assert out[0]["operator"] is None  # no operator rule: no MX needed
    code, out, _ = run(["exclusions", "check", "ok@gmail.com"], config=config, db=sqlite_url)
    assert code == 0
    assert "ok@gmail.com" in out


def test_check_operator_rule_uses_the_mx(
    tmp_path: Path, sqlite_url: str, dns_server: DnsServer
) -> None:
    dns_server.zone.set_mx("custom.example", [(10, "mx01.mail.icloud.com")])
    dns_server.zone.set_mx("corp.example", [(10, "aspmx.l.google.com")])
    dns_server.zone.servfail("broken.example")
    config = write_config(tmp_path / "c.toml", [], rules=["icloud.com", "operator:apple"])
    code, out, _ = run(
        [
            "exclusions",
            "check",
            "a@custom.example",
            "corp.example",
            "x@broken.example",
            "icloud.com",
            "--json",
        ],
        config=config,
        db=sqlite_url,
        nameserver=dns_server.nameserver,
    )
    assert code == 3
    by = {r["input"]: r for r in out}
    assert (by["a@custom.example"]["rule"], by["a@custom.example"]["operator"]) == (
        "operator:apple",
        "apple",
    )
    assert by["corp.example"]["rule"] is None
    assert by["corp.example"]["operator"] == "google/workspace"
    assert (by["x@broken.example"]["rule"], by["x@broken.example"]["status"]) == (
        None,
        "servfail",
    )
    assert by["icloud.com"]["rule"] == "icloud.com"
    assert dns_server.queries_for("icloud.com") == 0  # decided by its domain rule

    # offline: from the cache only; a domain never looked up stays undecided
    queries = dns_server.query_count
    code, out, _ = run(
        ["exclusions", "check", "--offline", "custom.example", "new.example", "--json"],
        config=config,
        db=sqlite_url,
        nameserver=dns_server.nameserver,
    )
    assert dns_server.query_count == queries
    assert [(r["rule"], r["status"]) for r in out] == [
        ("operator:apple", "ok"),
        (None, "not_cached"),
    ]


def test_check_stops_on_a_bad_rule_file(tmp_path: Path, sqlite_url: str) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("icloud.com\n*bad.com\n")
    config = write_config(tmp_path / "c.toml", [], files=[bad])
    code, out, err = run(
        ["exclusions", "check", "icloud.com", "--json"], config=config, db=sqlite_url
    )
    assert code == 2
    assert f"{bad}:2" in out["error"]
    assert err.startswith("Error: ")
