"""The HTTP layer under :class:`~inboxops.listmonk.client.ListmonkClient`: auth, retries, errors.

Kept apart from the calls so the policy is in one place and reads as one:

* **Retries.** Every call the client makes is idempotent in effect (reads, blocklisting, list
  changes, a settings PUT of the same body), so timeouts, dropped connections, ``429`` and
  ``5xx`` are retried with exponential backoff, honouring ``Retry-After`` (capped). listmonk
  itself has no rate limiting, but proxies in front of it answer 429/502/504, and listmonk is
  down for a few seconds after every settings change (it re-execs itself). ``4xx`` are never
  retried: a missing permission or a bad query does not heal by waiting.
* **Errors.** One line, :class:`~inboxops.errors.ListmonkError`, naming the instance and what
  to change. listmonk answers "not found" with 400 (not 404) and a missing permission with
  403 ``permission denied: <perm>``; both are translated.
* **Secrets.** The token only goes into the ``Authorization`` header (httpx masks it in
  reprs; the URL never holds it, so httpx's request log line cannot leak it); no httpx
  exception text is passed on; server messages are scrubbed of the token in every encoding we
  send. Cookies are never stored: listmonk v4+ ignores the header when a ``session`` cookie is
  present, so a cookie set by a proxy would silently turn every call into a 403.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, TypeVar

import httpx

from inboxops.errors import ListmonkError
from inboxops.listmonk.model import ListmonkInstance

log = logging.getLogger(__name__)

MAX_RETRIES = 5  # after the first attempt: 0.5+1+2+4+8 s rides out a listmonk reload (~3-5 s)
BACKOFF_BASE = 0.5
MAX_BACKOFF = 15.0
MAX_RETRY_AFTER = 60.0  # a longer Retry-After is capped (then bounded by MAX_RETRIES)

T = TypeVar("T")

_PERMISSION = re.compile(r"permission denied:\s*([\w.:-]+)", re.IGNORECASE)


class PermissionDenied(ListmonkError):
    """A 403 naming the permission the API user lacks (``permission``); still a ListmonkError.

    The client catches it for ``subscribers:sql_query`` to fall back to offset paging.
    """

    def __init__(self, message: str, permission: str) -> None:
        super().__init__(message)
        self.permission = permission


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta or HTTP date), capped; ``None`` if absent."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class Api:
    """Calls to one listmonk instance: ``data()`` for the ``{"data": ...}`` of a 200 answer."""

    def __init__(
        self,
        instance: ListmonkInstance,
        *,
        transport: httpx.BaseTransport | None,
        sleep: Callable[[float], None] = time.sleep,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        self.instance = instance
        self._sleep = sleep
        self._max_retries = max_retries
        headers = {"Accept": "application/json", "User-Agent": "inboxops"}
        self._secrets: list[str] = []
        if instance.user:
            token = instance.token.reveal()
            pair = f"{instance.user}:{token}"
            encoded = base64.b64encode(pair.encode()).decode()
            token_style = instance.auth == "token"
            headers["Authorization"] = f"token {pair}" if token_style else f"Basic {encoded}"
            self._secrets = [s for s in (pair, encoded, token) if s]  # longest first
        self._http = httpx.Client(
            base_url=instance.base_url,  # httpx adds the slash; relative paths keep a prefix
            headers=headers,
            timeout=instance.timeout,
            transport=transport,
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            follow_redirects=False,  # a redirect would carry the credentials elsewhere
        )

    def close(self) -> None:
        self._http.close()

    def data(
        self, method: str, path: str, what: str, *, params: Any = None, json: Any = None
    ) -> Any:
        """The ``data`` of a 200 answer; any other answer raises a one-line ListmonkError."""
        response = self.send(method, path, what, params=params, json=json)
        if response.status_code != 200:
            raise self.refusal(response, path, what)
        return self.payload(response, what)

    def payload(self, response: httpx.Response, what: str) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "data" not in body:
            raise self.unexpected(what)
        return body["data"]

    def parse(self, build: Callable[[], T], what: str) -> T:
        """``build()``, with a malformed answer turned into one ListmonkError line."""
        try:
            return build()
        except (KeyError, TypeError, ValueError, AttributeError):
            raise self.unexpected(what) from None

    def send(
        self, method: str, path: str, what: str, *, params: Any = None, json: Any = None
    ) -> httpx.Response:
        """One call with retries; returns the first answer that is not worth retrying."""
        name = self.instance.name
        last = "no attempt made"
        for attempt in range(self._max_retries + 1):
            wait: float | None = None
            try:
                response = self._http.request(method, path, params=params, json=json)
            except httpx.TimeoutException:
                last = f"no answer within {self.instance.timeout:g} s"
            except httpx.ConnectError:
                last = "could not connect"  # str(exc) is not passed on: it may hold the URL
            except httpx.TransportError as exc:
                last = f"connection lost ({type(exc).__name__})"
            except (httpx.RequestError, httpx.InvalidURL) as exc:
                raise ListmonkError(
                    f"cannot call listmonk instance {name} ({type(exc).__name__}); check its url"
                ) from None
            else:
                status = response.status_code
                if status != 429 and status < 500:
                    return response
                wait = retry_after(response)
                last = f"HTTP {status}: {self.message(response)}"
            if attempt == self._max_retries:
                break
            if wait is None:
                wait = min(BACKOFF_BASE * 2**attempt, MAX_BACKOFF)
            log.warning(
                "event=listmonk_retry instance=%s what=%r attempt=%d wait=%.1f reason=%r",
                name,
                what,
                attempt + 1,
                wait,
                last,
            )
            self._sleep(wait)
        raise ListmonkError(
            f"listmonk instance {name} did not answer {what} after {self._max_retries + 1} "
            f"tries ({last}); check that it is running and reachable at {self.instance.base_url}"
        )

    def message(self, response: httpx.Response) -> str:
        """listmonk's ``message`` (or the start of a proxy's page), one line, no secrets."""
        try:
            body = response.json()
            text = str(body.get("message", "")) if isinstance(body, dict) else ""
        except ValueError:
            text = response.text[:200]
        text = " ".join(text.split())[:300] or response.reason_phrase or "no message"
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def refusal(self, response: httpx.Response, path: str, what: str) -> ListmonkError:
        """The one-line error for an answer no retry can fix, saying what to change."""
        status, message = response.status_code, self.message(response)
        name, user = self.instance.name, self.instance.user
        where = f"listmonk instance {name}"
        permission = _PERMISSION.search(message)
        if status == 403 and permission:
            perm = permission.group(1)
            return PermissionDenied(
                f"{where} refused {what}: permission {perm} is missing; "
                f"grant {perm} to API user {user!r} on listmonk instance {name}",
                perm,
            )
        if status == 403 and "credentials" in message.lower():
            return ListmonkError(
                f"{where} refused API user {user!r} ({message}); check the user name and token "
                "configured for it (listmonk: Admin > Users > API user)"
            )
        if status == 403 and "session" in message.lower():
            return ListmonkError(
                f"{where} received no usable credentials ({message}); set user and token, and "
                "check that a proxy in front of it passes the Authorization header through"
            )
        if status in (401, 403):
            return ListmonkError(
                f"{where} refused the credentials of {user!r} ({status}: {message}); v2/v3 take "
                "the admin username and password with auth = basic, v4+ an API user and its token"
            )
        if status == 400 and "not found" in message.lower():
            return ListmonkError(f"{what} not found on {where}; it may have been deleted")
        if status in (404, 405):
            return ListmonkError(
                f"{where} has no {response.request.method} /{path} ({status}: {message}); check "
                f"that {self.instance.base_url} is listmonk's address (path prefix included) "
                "and that the listmonk version supports this call"
            )
        if 300 <= status < 400:
            location = response.headers.get("Location", "?")
            return ListmonkError(f"{where} redirects to {location}; set its url to that address")
        return ListmonkError(f"{where} rejected {what} ({status}: {message})")

    def unexpected(self, what: str) -> ListmonkError:
        return ListmonkError(
            f"listmonk instance {self.instance.name} answered {what} with something that is "
            f"not listmonk's JSON; check that {self.instance.base_url} is listmonk's address"
        )
