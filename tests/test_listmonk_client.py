"""The listmonk client against listmonk doubles over real loopback HTTP (tests/servers/listmonk.py).

No mocks: sockets, keep-alive, timeouts, status codes, envelopes and the SQL in ``query`` are
real. Waits between retries go through an injected ``sleep`` that records them, so the retry
policy is checked exactly and the suite does not sleep.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable

import httpx
import pytest

from inboxops.errors import ListmonkError
from inboxops.listmonk import ListmonkClient
from tests.listmonk_client_support import BLOCKLIST, SUBSCRIBERS, MakeServer, Sleeps, one_line
from tests.servers.listmonk import (
    ADMIN_PASSWORD,
    API_USER,
    SQL_QUERY,
    TOKEN,
    ListmonkDouble,
    Request,
)

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
