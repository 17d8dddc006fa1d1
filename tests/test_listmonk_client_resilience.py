"""The listmonk client's writes and its resilience, against listmonk doubles over real loopback
HTTP: bulk changes within their request budget, retries with backoff on 5xx and dropped
connections (never on 4xx), a server gone or restarted, and settings that keep their secrets.
Waits go through an injected ``sleep`` that records them (tests/listmonk_client_support.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import httpx
import pytest

from inboxops.config import Secret
from inboxops.errors import ConfigError, ListmonkError
from inboxops.listmonk import ListmonkClient, ListmonkInstance, Subscription
from tests.listmonk_client_support import BLOCKLIST, SUBSCRIBERS, MakeServer, Sleeps, one_line
from tests.servers.listmonk import API_USER, MASK, TOKEN, ListmonkDouble

# -- bulk changes -----------------------------------------------------------------------------


def test_scrub_stays_within_the_request_budget(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    """Scan 10,000, blocklist the icloud quarter: one listing per 2,000 (+1), one PUT per 1,000."""
    news, promo = listmonk_server.add_list("news"), listmonk_server.add_list("promo")
    domains = ("example.com", "icloud.com", "gmail.com", "x.org")
    ids = listmonk_server.seed(
        10_000, domains=domains, lists={news: "confirmed", promo: "unconfirmed"}
    )
    client = connect(listmonk_server, batch_size=1000)
    icloud = [s.id for s in client.iter_subscribers() if s.domain == "icloud.com"]
    assert len(icloud) == 2500
    assert client.blocklist(icloud) == 2500
    assert listmonk_server.count(SUBSCRIBERS) == 6  # <= 1 per 1,000 scanned
    puts = listmonk_server.requests_to(BLOCKLIST)
    assert [len(r.body["ids"]) for r in puts] == [1000, 1000, 500]
    assert {listmonk_server.status_of(i) for i in icloud} == {"blocklisted"}
    assert listmonk_server.memberships(icloud[0]) == {news: "unsubscribed", promo: "unsubscribed"}
    other = ids[0]
    assert listmonk_server.status_of(other) == "enabled"
    assert listmonk_server.memberships(other) == {news: "confirmed", promo: "unconfirmed"}


def test_blocklist_by_query_then_count(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    listmonk_server.seed(40, domains=("icloud.com", "example.com"))
    client = connect(listmonk_server)
    query = "subscribers.status = 'enabled' AND subscribers.email LIKE '%@icloud.com'"
    assert client.count_subscribers(query=query) == 20
    client.blocklist_by_query(query)
    assert client.count_subscribers(query=query) == 0
    assert client.count_subscribers(query="subscribers.status = 'blocklisted'") == 20


def test_unsubscribe_touches_only_the_given_lists(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    a, b, c, d = (listmonk_server.add_list(n) for n in "ABCD")
    ids = listmonk_server.seed(3, lists=[a, b, c])
    client = connect(listmonk_server)
    assert client.unsubscribe_from_lists(ids[:2], [a, b]) == 2
    assert listmonk_server.memberships(ids[0]) == {
        a: "unsubscribed",
        b: "unsubscribed",
        c: "confirmed",
    }
    assert listmonk_server.memberships(ids[2]) == {a: "confirmed", b: "confirmed", c: "confirmed"}
    assert {listmonk_server.status_of(i) for i in ids} == {"enabled"}  # not blocklisted
    client.remove_from_lists(ids[:1], [c])
    client.add_to_lists(ids[:1], [d])
    assert listmonk_server.memberships(ids[0]) == {
        a: "unsubscribed",
        b: "unsubscribed",
        d: "confirmed",
    }
    sub = client.get_subscriber(ids[0])
    assert sub.subscription(a) == Subscription(a, "A", "unsubscribed", "private", "single")
    assert sub.subscription(c) is None


def test_batch_failure_says_how_far_it_got(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    ids = listmonk_server.seed(3000)
    listmonk_server.fail(503, after=1, times=10, endpoint=BLOCKLIST)
    with pytest.raises(ListmonkError) as exc:
        connect(listmonk_server, max_retries=2, batch_size=1000).blocklist(ids)
    text = one_line(exc)
    assert "did not answer blocklisting subscribers after 3 tries (HTTP 503" in text
    assert text.endswith(
        "(1000 of 3000 subscribers were done before it failed; running again is safe)"
    )


# -- resilience -------------------------------------------------------------------------------


def test_503_mid_scan_is_retried_with_backoff(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient], sleeps: Sleeps
) -> None:
    listmonk_server.seed(5000)
    listmonk_server.fail(503, after=1, times=2, endpoint=SUBSCRIBERS)  # the 2nd and 3rd listing
    assert len(list(connect(listmonk_server).iter_subscribers(page_size=1000))) == 5000
    assert sleeps.waits == [0.5, 1.0]
    assert [r.status for r in listmonk_server.requests_to(SUBSCRIBERS)][:4] == [200, 503, 503, 200]


@pytest.mark.parametrize(
    ("status", "retry_after", "wait"), [(429, 7, 7.0), (503, 3600, 60.0), (502, None, 0.5)]
)
def test_retry_after_is_honoured_and_capped(
    listmonk_server: ListmonkDouble,
    connect: Callable[..., ListmonkClient],
    sleeps: Sleeps,
    status: int,
    retry_after: int | None,
    wait: float,
) -> None:
    listmonk_server.fail(status, retry_after=retry_after)
    assert connect(listmonk_server).lists() == []
    assert sleeps.waits == [wait]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405])
def test_client_errors_are_never_retried(
    listmonk_server: ListmonkDouble,
    connect: Callable[..., ListmonkClient],
    sleeps: Sleeps,
    status: int,
) -> None:
    listmonk_server.fail(status)
    with pytest.raises(ListmonkError):
        connect(listmonk_server).lists()
    assert listmonk_server.count("GET /api/lists") == 1
    assert sleeps.waits == []


@pytest.mark.parametrize("reset", [False, True])
def test_dropped_connection_then_recovered(
    listmonk_server: ListmonkDouble,
    connect: Callable[..., ListmonkClient],
    sleeps: Sleeps,
    reset: bool,
) -> None:
    ids = listmonk_server.seed(2500)
    listmonk_server.drop(after=1, times=2, reset=reset)
    assert len(list(connect(listmonk_server).iter_subscribers(page_size=1000))) == 2500
    client = connect(listmonk_server, batch_size=1000)
    listmonk_server.drop(after=1, endpoint=BLOCKLIST, reset=reset)
    assert client.blocklist(ids) == 2500
    assert len(sleeps.waits) == 3
    assert {listmonk_server.status_of(i) for i in ids} == {"blocklisted"}


def test_slow_answer_times_out_and_is_retried(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient], sleeps: Sleeps
) -> None:
    listmonk_server.hang(3.0)
    client = connect(listmonk_server, listmonk_server.instance(timeout=0.3))
    assert client.lists() == []
    assert sleeps.waits == [0.5]


def test_server_gone_is_a_clear_error(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient], sleeps: Sleeps
) -> None:
    client = connect(listmonk_server, max_retries=2)
    client.lists()
    listmonk_server.stop()
    with pytest.raises(ListmonkError) as exc:
        client.lists()
    assert one_line(exc) == (
        "listmonk instance main did not answer listing lists after 3 tries (could not connect); "
        f"check that it is running and reachable at {listmonk_server.url}"
    )
    assert sleeps.waits == [0.5, 1.0]


def test_server_stopping_mid_scan_fails_the_scan(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    listmonk_server.seed(3000)
    listmonk_server.stop_after(2, endpoint=SUBSCRIBERS)
    got: list[int] = []
    with pytest.raises(ListmonkError, match="did not answer the subscriber query after 3 tries"):
        got.extend(
            s.id for s in connect(listmonk_server, max_retries=2).iter_subscribers(page_size=1000)
        )
    assert len(got) == 2000


def test_server_restarted_during_backoff_is_picked_up_again(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient], sleeps: Sleeps
) -> None:
    client = connect(listmonk_server)
    client.lists()
    listmonk_server.stop()
    sleeps.then = listmonk_server.start  # back on the same port while the client waits
    assert client.lists() == []
    assert sleeps.waits == [0.5]


# -- settings ---------------------------------------------------------------------------------


def test_settings_round_trip_keeps_secrets_and_every_other_key(
    make_listmonk_server: MakeServer, connect: Callable[..., ListmonkClient], sleeps: Sleeps
) -> None:
    double = make_listmonk_server(version="v5.1.0")  # no per-key route: the whole object goes
    before = copy.deepcopy(double.settings)
    client = connect(double)
    assert client.get_settings()["smtp"][0]["password"] == MASK * len("smtp-secret-value")
    assert client.update_settings({"privacy.domain_blocklist": ["icloud.com", "me.com"]})
    assert double.count("PUT /api/settings") == 1
    assert double.settings == {**before, "privacy.domain_blocklist": ["icloud.com", "me.com"]}
    # listmonk reloads after the change; the next call rides out the dropped connections
    assert client.get_settings()["privacy.domain_blocklist"] == ["icloud.com", "me.com"]
    assert sleeps.waits == [0.5, 1.0]


def test_the_double_wipes_secrets_like_listmonk_on_a_naive_put(
    make_listmonk_server: MakeServer,
) -> None:
    """What update_settings guards against: a PUT of the masked GET stores the bullets, and a
    PUT of some keys zeroes the others."""
    double = make_listmonk_server(version="v5.1.0")
    double.reload_drops = 0
    auth = {"Authorization": f"token {API_USER}:{TOKEN}"}
    url = f"{double.url}/api/settings"
    masked = httpx.get(url, headers=auth).json()["data"]
    assert httpx.put(url, headers=auth, json=masked).json() == {"data": True}
    assert double.settings["smtp"][0]["password"] == MASK * len("smtp-secret-value")
    partial = {"smtp": masked["smtp"], "privacy.domain_blocklist": ["x.com"]}
    assert httpx.put(url, headers=auth, json=partial).status_code == 200
    assert double.settings["app.concurrency"] == 0
    assert double.settings["bounce.postmark"]["username"] == ""


def test_v6_changes_one_setting_through_its_key(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    before = copy.deepcopy(listmonk_server.settings)
    assert connect(listmonk_server).update_settings({"privacy.domain_blocklist": ["me.com"]})
    assert listmonk_server.count("PUT /api/settings/:key") == 1
    assert listmonk_server.count("PUT /api/settings") == 0
    assert listmonk_server.settings == {**before, "privacy.domain_blocklist": ["me.com"]}


def test_unknown_setting_is_refused_before_anything_is_written(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    with pytest.raises(ListmonkError, match=r"has no setting\(s\) privacy\.domain_blocklst"):
        connect(listmonk_server).update_settings({"privacy.domain_blocklst": ["me.com"]})
    assert listmonk_server.count("PUT /api/settings/:key") == 0


def test_settings_saved_but_pending_while_a_campaign_runs(
    make_listmonk_server: MakeServer, connect: Callable[..., ListmonkClient]
) -> None:
    double = make_listmonk_server(version="v4.1.0")
    double.campaign_running = True
    assert connect(double).update_settings({"privacy.domain_blocklist": ["me.com"]}) is False
    assert double.settings["privacy.domain_blocklist"] == ["me.com"]


# -- instances and URLs -----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/"])
def test_path_prefix_with_or_without_trailing_slash(
    make_listmonk_server: MakeServer, connect: Callable[..., ListmonkClient], suffix: str
) -> None:
    double = make_listmonk_server(prefix="/listmonk")
    double.add_list("A")
    client = connect(double, double.instance(url=double.url + suffix))
    assert [lst.name for lst in client.lists()] == ["A"]
    root = double.url.removesuffix("/listmonk")
    with pytest.raises(ListmonkError) as exc:
        connect(double, double.instance(url=root)).lists()
    assert "(path prefix included)" in one_line(exc)


def test_instances_are_independent(
    make_listmonk_server: MakeServer, connect: Callable[..., ListmonkClient]
) -> None:
    main, warmup = make_listmonk_server("main"), make_listmonk_server("warmup", version="v3.0.0")
    main_ids, warm_ids = main.seed(10), warmup.seed(3)
    assert main_ids[:3] == warm_ids == [1, 2, 3]  # each has its own database
    connect(main).blocklist(main_ids)
    assert {warmup.status_of(i) for i in warm_ids} == {"enabled"}
    assert connect(warmup).count_subscribers() == 3
    warmup.stop()
    with pytest.raises(ListmonkError, match=r"^listmonk instance warmup did not answer"):
        connect(warmup, max_retries=0).lists()
    assert connect(main).count_subscribers() == 10


def test_version_is_none_before_2_5(
    make_listmonk_server: MakeServer, connect: Callable[..., ListmonkClient]
) -> None:
    assert connect(make_listmonk_server(version="v2.4.0")).check() is None


def test_instance_is_validated_and_masks_its_token() -> None:
    instance = ListmonkInstance("main", "https://lists.example.com/listmonk/", "u", Secret("t0k"))
    assert "t0k" not in repr(instance)
    assert instance.base_url.endswith("/listmonk")
    for url in ("lists.example.com", "ftp://x", "https://u:p@x.example", "https://x.example/?a=1"):
        with pytest.raises(ConfigError, match="listmonk instance 'main'"):
            ListmonkInstance("main", url, "u", Secret("t"))
    with pytest.raises(ConfigError, match="set both user and token"):
        ListmonkInstance("main", "https://x.example", "u", Secret(""))
    with pytest.raises(ConfigError, match="auth must be one of"):
        ListmonkInstance("main", "https://x.example", "u", Secret("t"), auth="bearer")  # type: ignore[arg-type]
