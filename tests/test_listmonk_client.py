"""The listmonk client against listmonk doubles over real loopback HTTP (tests/servers/listmonk.py).

No mocks: sockets, keep-alive, timeouts, status codes, envelopes and the SQL in ``query`` are
real. Waits between retries go through an injected ``sleep`` that records them, so the retry
policy is checked exactly and the suite does not sleep.
"""

from __future__ import annotations

import base64
import copy
import logging
import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from inboxops.config import Secret
from inboxops.errors import ConfigError, ListmonkError
from inboxops.listmonk import ListmonkClient, ListmonkInstance, Subscription
from tests.servers.listmonk import (
    ADMIN_PASSWORD,
    API_USER,
    MASK,
    SQL_QUERY,
    TOKEN,
    ListmonkDouble,
    Request,
)

SUBSCRIBERS = "GET /api/subscribers"
BLOCKLIST = "PUT /api/subscribers/blocklist"

MakeServer = Callable[..., ListmonkDouble]


class Sleeps:
    """Records waits instead of sleeping (injected, not patched); ``then`` runs on each wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.then: Callable[[], None] | None = None

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.then is not None:
            self.then()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def connect(sleeps: Sleeps) -> Iterator[Callable[..., ListmonkClient]]:
    """``connect(double, instance=None, **client_kwargs)``: a client, closed after the test."""
    clients: list[ListmonkClient] = []

    def make(
        double: ListmonkDouble, instance: ListmonkInstance | None = None, **kwargs: Any
    ) -> ListmonkClient:
        client = ListmonkClient(instance or double.instance(), sleep=sleeps, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Everything at DEBUG, httpx and httpcore included (an embedding app may turn them up)."""
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "inboxops"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def one_line(exc: pytest.ExceptionInfo[ListmonkError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# -- authentication ---------------------------------------------------------------------------


def test_v4_token_auth(
    make_listmonk_server: MakeServer, connect: Callable[..., ListmonkClient]
) -> None:
    double = make_listmonk_server(version="v4.1.0")
    client = connect(double, double.instance(auth="token"))
    version = client.check()
    assert version is not None
    assert str(version) == "v4.1.0"
    assert client.lists() == []
    assert {r.auth_scheme for r in double.requests} == {"token"}


def test_v3_basic_auth_with_admin_credentials(
    make_listmonk_server: MakeServer, connect: Callable[..., ListmonkClient]
) -> None:
    double = make_listmonk_server(version="v3.0.0")
    double.add_list("Newsletter")
    client = connect(double)
    assert [lst.name for lst in client.lists()] == ["Newsletter"]
    assert {r.auth_scheme for r in double.requests} == {"basic"}

    with pytest.raises(ListmonkError) as exc:
        connect(double, double.instance(auth="token")).lists()
    text = one_line(exc)
    assert "401" in text
    assert "auth = basic" in text
    assert ADMIN_PASSWORD not in text


def test_auto_auth_is_basic_and_v5_accepts_it(
    make_listmonk_server: MakeServer, connect: Callable[..., ListmonkClient]
) -> None:
    double = make_listmonk_server(version="v5.1.0")
    assert connect(double).check() is not None
    assert {r.auth_scheme for r in double.requests} == {"basic"}


def test_wrong_token_is_one_line_and_never_shows_the_token(
    listmonk_server: ListmonkDouble,
    connect: Callable[..., ListmonkClient],
    all_logs: pytest.LogCaptureFixture,
) -> None:
    wrong = "wrong-token-Zx81-secret"
    for auth in ("token", "basic"):
        instance = listmonk_server.instance(token=wrong, auth=auth)
        with pytest.raises(ListmonkError) as exc:
            connect(listmonk_server, instance).lists()
        text = one_line(exc)
        assert "listmonk instance main refused API user 'inboxops'" in text
        assert "invalid API credentials" in text
        assert wrong not in text
        assert wrong not in repr(instance)
    assert listmonk_server.count("GET /api/lists") == 2  # a 403 is never retried
    assert wrong not in all_logs.text


def test_token_never_logged_even_at_debug(
    listmonk_server: ListmonkDouble,
    connect: Callable[..., ListmonkClient],
    all_logs: pytest.LogCaptureFixture,
) -> None:
    listmonk_server.seed(30)
    listmonk_server.fail(503, times=2)
    client = connect(listmonk_server, listmonk_server.instance(auth="token"))
    assert len(list(client.iter_subscribers(page_size=10))) == 30
    assert "event=listmonk_retry" in all_logs.text
    assert "HTTP Request" in all_logs.text
    encoded = base64.b64encode(f"{API_USER}:{TOKEN}".encode()).decode()
    for secret in (TOKEN, encoded):
        assert secret not in all_logs.text
        assert secret not in repr(client) + repr(client.instance)


@pytest.mark.parametrize("auth", ["token", "basic"])
def test_a_server_echoing_the_credentials_does_not_leak_them(
    listmonk_server: ListmonkDouble,
    connect: Callable[..., ListmonkClient],
    all_logs: pytest.LogCaptureFixture,
    auth: str,
) -> None:
    """A proxy may quote the header it refused; the error and the retry log carry no secret."""
    encoded = base64.b64encode(f"{API_USER}:{TOKEN}".encode()).decode()
    header = f"token {API_USER}:{TOKEN}" if auth == "token" else f"Basic {encoded}"
    listmonk_server.fail(502, message=f"upstream refused Authorization: {header}")
    listmonk_server.fail(400, message=f"bad request with Authorization: {header}")
    with pytest.raises(ListmonkError) as exc:
        connect(listmonk_server, listmonk_server.instance(auth=auth)).lists()
    assert "bad request with Authorization" in one_line(exc)
    for secret in (TOKEN, encoded):
        assert secret not in str(exc.value)
        assert secret not in all_logs.text


def test_session_cookie_set_by_a_proxy_is_not_sent_back(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    """listmonk v4+ ignores the Authorization header when a session cookie is present."""
    listmonk_server.session_cookie = True
    client = connect(listmonk_server)
    client.lists()
    client.lists()  # would be 403 "invalid session" had the cookie been kept
    assert listmonk_server.count("GET /api/lists") == 2


# -- permissions ------------------------------------------------------------------------------


def test_missing_sql_query_permission_is_named(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    listmonk_server.revoke(SQL_QUERY)
    client = connect(listmonk_server)
    for call in (
        lambda: client.count_subscribers(query="subscribers.status = 'enabled'"),
        lambda: client.blocklist_by_query("subscribers.email LIKE '%@icloud.com'"),
        lambda: list(client.iter_subscribers(query="subscribers.id > 0")),
    ):
        with pytest.raises(ListmonkError) as exc:
            call()
        assert one_line(exc).endswith(
            "grant subscribers:sql_query to API user 'inboxops' on listmonk instance main"
        )
    assert listmonk_server.count(SUBSCRIBERS) == 2
    assert listmonk_server.count("PUT /api/subscribers/query/blocklist") == 1


def test_missing_manage_permission_is_named_and_not_retried(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient], sleeps: Sleeps
) -> None:
    ids = listmonk_server.seed(3)
    listmonk_server.revoke("subscribers:manage")
    with pytest.raises(ListmonkError, match="grant subscribers:manage to API user 'inboxops'"):
        connect(listmonk_server).blocklist(ids)
    assert listmonk_server.count(BLOCKLIST) == 1
    assert sleeps.waits == []
    assert {listmonk_server.status_of(i) for i in ids} == {"enabled"}


def test_v4_has_no_sql_query_permission_to_lack(
    make_listmonk_server: MakeServer, connect: Callable[..., ListmonkClient]
) -> None:
    double = make_listmonk_server(version="v4.1.0")
    double.revoke(SQL_QUERY)
    double.seed(5, domains=("icloud.com",))
    assert connect(double).count_subscribers(query="subscribers.email LIKE '%@icloud.com'") == 5


# -- listing and paging -----------------------------------------------------------------------


def _churn(double: ListmonkDouble, doomed: list[int], per_request: int) -> None:
    """Before every subscriber listing: delete some doomed rows (below and above the cursor)
    and add new subscribers, as other admins and sign-ups would while we page."""
    pending = list(doomed)
    random.Random(7).shuffle(pending)

    def hook(req: Request) -> None:
        if req.endpoint == SUBSCRIBERS:
            batch = pending[:per_request]
            del pending[:per_request]
            double.delete_subscribers(batch)
            double.seed(5, domains=("new.example",))

    double.before_request = hook


def test_keyset_paging_never_skips_while_rows_change(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    ids = listmonk_server.seed(3000)
    doomed = ids[::5]
    stable = set(ids) - set(doomed)
    _churn(listmonk_server, doomed, per_request=40)
    seen = [s.id for s in connect(listmonk_server).iter_subscribers(page_size=250)]
    assert stable <= set(seen)
    assert seen == sorted(set(seen))  # ascending, each once
    listings = listmonk_server.requests_to(SUBSCRIBERS)
    assert all(r.param("page") == "1" and "subscribers.id >" in r.param("query") for r in listings)


def test_naive_offset_paging_does_skip_in_the_double(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    """The hazard the client avoids is real in the double, as on listmonk."""
    ids = listmonk_server.seed(3000)
    _churn(listmonk_server, ids[::5], per_request=40)
    client, seen, page = connect(listmonk_server), set(), 1
    while rows := client.subscribers_page(page=page, per_page=250, order="asc").results:
        seen |= {s.id for s in rows}
        page += 1
    assert set(ids) - set(ids[::5]) - seen  # stable subscribers were skipped


def test_offset_fallback_without_sql_query_never_skips(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    listmonk_server.revoke(SQL_QUERY)
    ids = listmonk_server.seed(3000)
    doomed = ids[::5]
    stable = set(ids) - set(doomed)
    _churn(listmonk_server, doomed, per_request=40)
    client = connect(listmonk_server)
    seen = [s.id for s in client.iter_subscribers(page_size=250)]
    assert stable <= set(seen)
    assert seen == sorted(set(seen))
    listings = listmonk_server.requests_to(SUBSCRIBERS)
    assert listings[0].status == 403
    assert all(not r.param("query") for r in listings[1:])
    # the client remembers: the next walk goes straight to offset windows
    listmonk_server.before_request = None
    before = listmonk_server.count(SUBSCRIBERS)
    total = listmonk_server.sql("SELECT COUNT(*) FROM subscribers")[0][0]
    assert len(list(client.iter_subscribers(page_size=5000))) == total
    assert listmonk_server.count(SUBSCRIBERS) == before + 1


def test_keyset_paging_that_makes_no_progress_stops_with_an_error(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    """A proxy that strips ``query`` must not send the client round in circles."""
    listmonk_server.seed(50)
    listmonk_server.before_request = lambda req: req.params.pop("query", None)
    with pytest.raises(ListmonkError, match="answered the same subscribers again while paging"):
        list(connect(listmonk_server).iter_subscribers(page_size=10))
    assert listmonk_server.count(SUBSCRIBERS) == 2


@pytest.mark.parametrize("sql_query", [True, False])
def test_a_page_size_not_honoured_is_an_error_not_a_short_walk(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient], sql_query: bool
) -> None:
    """Without ``per_page`` listmonk pages by 20; a short page would look like the last one."""
    if not sql_query:
        listmonk_server.revoke(SQL_QUERY)
    listmonk_server.seed(50)
    listmonk_server.before_request = lambda req: req.params.pop("per_page", None)
    with pytest.raises(ListmonkError, match="answered pages of 20 when asked for 100 while"):
        list(connect(listmonk_server).iter_subscribers(page_size=100))


def test_offset_paging_survives_a_stripped_page_parameter(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    """Every window then starts at row one, which is contiguous by definition: slower, right."""
    listmonk_server.revoke(SQL_QUERY)
    ids = listmonk_server.seed(50)
    listmonk_server.before_request = lambda req: req.params.pop("page", None)
    assert [s.id for s in connect(listmonk_server).iter_subscribers(page_size=10)] == ids


def test_subscriber_on_several_lists_comes_once(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    a, b = listmonk_server.add_list("A"), listmonk_server.add_list("B")
    listmonk_server.seed(10, lists=[a, b])
    listmonk_server.seed(5, lists=[b])
    client = connect(listmonk_server)
    raw = client.subscribers_page(list_ids=[a, b], per_page=None)
    assert len(raw.results) == 25  # listmonk's LEFT JOIN: once per list
    assert len([s.id for s in client.iter_subscribers(list_ids=[a, b], page_size=4)]) == 15
    listmonk_server.revoke(SQL_QUERY)
    assert len([s.id for s in connect(listmonk_server).iter_subscribers(list_ids=[a, b])]) == 15


def test_per_page_all_is_echoed_as_zero_and_read_as_all(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    for n in range(60):  # more than MaxPerPage (50) and the default page (20)
        listmonk_server.add_list(f"list {n}")
    listmonk_server.seed(70)
    client = connect(listmonk_server)
    assert len(client.lists()) == 60
    assert listmonk_server.count("GET /api/lists") == 1
    page = client.subscribers_page(per_page=None)
    assert (page.per_page, page.total, len(page.results)) == (None, 70, 70)
    raw = httpx.get(
        f"{listmonk_server.url}/api/subscribers?per_page=all",
        headers={"Authorization": f"token {API_USER}:{TOKEN}"},
    ).json()["data"]
    assert raw["per_page"] == 0
    assert len(raw["results"]) == 70
    assert client.subscribers_page(per_page=0).per_page == 20  # junk -> 20, as paginator does


def test_default_order_is_descending_by_id(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    ids = listmonk_server.seed(5)
    client = connect(listmonk_server)
    assert [s.id for s in client.subscribers_page().results] == ids[::-1]
    assert [s.id for s in client.subscribers_page(order="asc").results] == ids


def test_query_is_evaluated_as_sql(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    listmonk_server.seed(30, domains=("icloud.com", "gmail.com", "me.com"))
    listmonk_server.add_subscriber("Shouty@ICLOUD.COM", attribs={"city": "Oslo"})
    listmonk_server.seed(4, domains=("icloud.com",), status="blocklisted")
    client = connect(listmonk_server)
    count = client.count_subscribers
    assert count(query="subscribers.email LIKE '%@icloud.com'") == 14  # LIKE is case-sensitive
    domain = "LOWER(SPLIT_PART(subscribers.email, '@', 2))"
    assert count(query=f"{domain} IN ('icloud.com', 'me.com')") == 25
    apple = f"subscribers.status = 'enabled' AND {domain} IN ('icloud.com', 'me.com')"
    assert count(query=apple) == 21
    assert count(query="subscribers.attribs->>'city' = 'Oslo'") == 1
    assert count(query="subscribers.id > 30") == 5


def test_bad_sql_is_a_400_never_retried(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient], sleeps: Sleeps
) -> None:
    with pytest.raises(ListmonkError) as exc:
        connect(listmonk_server).count_subscribers(query="subscribers.email LIKE")
    text = one_line(exc)
    assert "rejected the subscriber query (400: Error preparing subscriber query" in text
    assert listmonk_server.count(SUBSCRIBERS) == 1
    assert sleeps.waits == []


def test_not_found_is_listmonks_400_with_a_clear_message(
    listmonk_server: ListmonkDouble, connect: Callable[..., ListmonkClient]
) -> None:
    client = connect(listmonk_server)
    with pytest.raises(ListmonkError) as exc:
        client.get_subscriber(424242)
    assert one_line(exc).startswith("subscriber 424242 not found on listmonk instance main")
    with pytest.raises(ListmonkError, match=r"^list 9 not found on listmonk instance main"):
        client.get_list(9)
    assert listmonk_server.count("GET /api/subscribers/:id") == 1


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
