"""OAuth2 access tokens for IMAP (SASL XOAUTH2): Microsoft client credentials, Google refresh.

Microsoft 365 no longer accepts passwords over IMAP and Gmail prefers OAuth2, so with
``[dmarc.imap] auth = "xoauth2"`` a login presents a short-lived access token instead of the
password. Two flows, the ones a daemon without a browser can run unattended:

* ``oauth_provider = "microsoft"``: the client-credentials grant of an Entra app registration
  (tenant, client id, client secret; scope ``https://outlook.office365.com/.default``), through
  msal (the optional extra ``inboxops[oauth]``);
* ``oauth_provider = "google"``: a stored refresh token exchanged at Google's token endpoint
  (one form POST with httpx; scope ``https://mail.google.com/`` was granted when it was made).

:class:`AccessTokens` decides *when* a token is needed: it asks for one at the first login,
reuses it while it has more than :data:`REFRESH_MARGIN` seconds to live and asks again before
that, so a reconnect late in a long backfill never presents a token about to run out. msal's
own cache is therefore not used (a new msal application per request), and the clock is
injected so tests can move it. Tokens and secrets stay in :class:`Secret` objects and local
variables: never logged, never in an error (errors name the provider, the OAuth error code and
the setting to change). A credential the provider refuses (revoked, expired, wrong) is a
:class:`ConfigError`, exit 2: retrying under cron cannot fix it. An unreachable provider is an
:class:`ImapError`, exit 1.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from inboxops.config import ImapSettings, Secret
from inboxops.errors import ConfigError, ImapError

log = logging.getLogger(__name__)

REFRESH_MARGIN = 300.0  # seconds: a token with less left than this is replaced before use
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_SCOPE = "https://mail.google.com/"
# OAuth error codes that mean "the credentials or the app registration are wrong": an operator
# has to act. Anything else (server_error, temporarily_unavailable, ...) may pass on its own.
_CREDENTIAL_ERRORS = frozenset(
    {
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "invalid_scope",
        "invalid_request",
        "unsupported_grant_type",
        "access_denied",
    }
)
_AADSTS = re.compile(r"\bAADSTS\d+\b")
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


@dataclass(frozen=True)
class Issued:
    """An access token as a provider handed it over: the value and its lifetime (seconds)."""

    token: Secret
    lifetime: float


class TokenSource(Protocol):
    """One provider's grant: asked for a new access token whenever :class:`AccessTokens` says."""

    label: str  # "Microsoft tenant X", for messages

    def request(self) -> Issued: ...


def due(now: float, expires_at: float | None, margin: float = REFRESH_MARGIN) -> bool:
    """Whether a token expiring at ``expires_at`` must be replaced before use at ``now``."""
    return expires_at is None or now >= expires_at - margin


class AccessTokens:
    """The current access token of one mailbox login, renewed before it runs out."""

    def __init__(
        self,
        source: TokenSource,
        *,
        clock: Callable[[], float] = time.monotonic,
        margin: float = REFRESH_MARGIN,
    ) -> None:
        self.source = source
        self.clock = clock
        self.margin = margin
        self.requests = 0  # tokens asked for so far
        self._token = Secret("")
        self._expires_at: float | None = None

    @property
    def label(self) -> str:
        return self.source.label

    def get(self) -> tuple[Secret, bool]:
        """The token to present now, and whether it was just issued (a fresh token that is
        refused is not worth asking again for)."""
        if not due(self.clock(), self._expires_at, self.margin):
            return self._token, False
        started = self.clock()  # the lifetime counts from the request, not from the answer
        issued = self.source.request()
        self.requests += 1
        self._token = issued.token
        self._expires_at = started + issued.lifetime
        log.info("event=oauth_token provider=%s lifetime=%d", self.label, int(issued.lifetime))
        return self._token, True

    def invalidate(self) -> None:
        """Forget the token (the server refused it before its time: revoked, clock skew)."""
        self._expires_at = None


def xoauth2_response(user: str, token: Secret) -> bytes:
    """The SASL XOAUTH2 initial client response (before IMAP's base64)."""
    return f"user={user}\x01auth=Bearer {token.reveal()}\x01\x01".encode()


def check_oauth(imap: ImapSettings) -> None:
    """Refuse, with the setting to fix, an XOAUTH2 configuration that cannot work."""
    provider = imap.oauth_provider
    if not provider:
        raise ConfigError(
            '[dmarc.imap] auth = "xoauth2" needs oauth_provider = "microsoft" or "google" '
            "(INBOXOPS_IMAP_OAUTH_PROVIDER)"
        )
    missing = [("oauth_client_id", "CLIENT_ID")] if not imap.oauth_client_id else []
    if provider == "microsoft":
        if not imap.oauth_tenant:
            missing.append(("oauth_tenant", "TENANT"))
        if not imap.oauth_client_secret:
            missing.append(("oauth_client_secret", "CLIENT_SECRET"))
        url_key, url = "oauth_authority", imap.oauth_authority
    else:
        if not imap.oauth_refresh_token:
            missing.append(("oauth_refresh_token", "REFRESH_TOKEN"))
        url_key, url = "oauth_token_url", imap.oauth_token_url
    if missing:
        keys = ", ".join(k for k, _ in missing)
        envs = ", ".join(f"INBOXOPS_IMAP_OAUTH_{e}" for _, e in missing)
        raise ConfigError(f"OAuth2 login with {provider} needs [dmarc.imap] {keys} ({envs})")
    if urlsplit(url).scheme != "https":
        raise ConfigError(
            f"[dmarc.imap] {url_key} = {url!r}: the client credentials would cross the network "
            "in clear; give an https:// URL"
        )


def access_tokens(
    imap: ImapSettings, *, clock: Callable[[], float] = time.monotonic
) -> AccessTokens:
    """The token keeper for the configured provider (settings checked first)."""
    check_oauth(imap)
    source: TokenSource
    if imap.oauth_provider == "microsoft":
        source = MicrosoftClientCredentials(imap)
    else:
        source = GoogleRefreshToken(imap)
    return AccessTokens(source, clock=clock)


class MicrosoftClientCredentials:
    """Entra ID client credentials through msal (``pip install 'inboxops[oauth]'``)."""

    def __init__(self, imap: ImapSettings) -> None:
        try:
            import msal
        except ImportError:
            raise ConfigError(
                'oauth_provider = "microsoft" needs the msal package; install it with '
                "pip install 'inboxops[oauth]'"
            ) from None
        self._msal: Any = msal
        self.imap = imap
        self.authority = f"{imap.oauth_authority.rstrip('/')}/{imap.oauth_tenant}"
        self.label = f"microsoft tenant {imap.oauth_tenant}"

    def request(self) -> Issued:
        imap = self.imap
        scope = imap.oauth_scope or MICROSOFT_SCOPE
        try:
            with _http_client(imap) as http:
                # msal's documented http_client hook takes an httpx client as it is: one HTTP
                # stack, our timeout and our CA bundle (requests, msal's default, lets
                # REQUESTS_CA_BUNDLE in the environment override the bundle it is given).
                # A new application each time: its cache would otherwise hand back the token
                # this module just decided to replace. The authority is the operator's own
                # setting, so msal's instance discovery (asking Microsoft about it) is skipped;
                # the tenant discovery (OIDC metadata from the authority itself) still runs.
                app = self._msal.ConfidentialClientApplication(
                    imap.oauth_client_id,
                    client_credential=imap.oauth_client_secret.reveal(),
                    authority=self.authority,
                    instance_discovery=False,
                    token_cache=self._msal.TokenCache(),
                    http_client=http,
                )
                result = app.acquire_token_for_client(scopes=[scope])
        except ValueError:
            raise ConfigError(
                f"Microsoft has no tenant {imap.oauth_tenant!r} at {imap.oauth_authority}; "
                "check [dmarc.imap] oauth_tenant (INBOXOPS_IMAP_OAUTH_TENANT) and oauth_authority"
            ) from None
        except httpx.HTTPError as exc:
            raise ImapError(
                f"cannot reach the Microsoft token service at {imap.oauth_authority} "
                f"({type(exc).__name__}); check the network, [dmarc.imap] oauth_authority and "
                "oauth_ca_file"
            ) from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if isinstance(token, str) and token:
            return Issued(Secret(token), _lifetime(result.get("expires_in")))
        error = _error_of(result)
        code = _AADSTS.search(str(result.get("error_description", "")))
        detail = f"{error}, {code.group(0)}" if code else error
        if error in _CREDENTIAL_ERRORS:
            raise ConfigError(
                f"Microsoft refused the client credentials of app {imap.oauth_client_id} in "
                f"tenant {imap.oauth_tenant} ({detail}); the client secret may be expired or "
                "revoked: set a current one in INBOXOPS_IMAP_OAUTH_CLIENT_SECRET (or "
                "[dmarc.imap] oauth_client_secret / oauth_client_secret_file), and check the "
                "app's IMAP.AccessAsApp permission"
            )
        raise ImapError(f"the Microsoft token service failed ({detail}); rerun later")


class GoogleRefreshToken:
    """A Google refresh token exchanged for an access token (RFC 6749 section 6)."""

    def __init__(self, imap: ImapSettings) -> None:
        self.imap = imap
        self.label = "google"

    def request(self) -> Issued:
        imap = self.imap
        form = {
            "grant_type": "refresh_token",
            "client_id": imap.oauth_client_id,
            "refresh_token": imap.oauth_refresh_token.reveal(),
        }
        if imap.oauth_client_secret:
            form["client_secret"] = imap.oauth_client_secret.reveal()
        if imap.oauth_scope:
            form["scope"] = imap.oauth_scope
        try:
            with _http_client(imap) as client:
                response = client.post(imap.oauth_token_url, data=form)
        except httpx.HTTPError as exc:
            raise ImapError(
                f"cannot reach the Google token endpoint {imap.oauth_token_url} "
                f"({type(exc).__name__}); check the network, [dmarc.imap] oauth_token_url and "
                "oauth_ca_file"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        token = body.get("access_token")
        if response.status_code == 200 and isinstance(token, str) and token:
            return Issued(Secret(token), _lifetime(body.get("expires_in")))
        error = _error_of(body)
        if error == "invalid_grant":
            raise ConfigError(
                "Google refused the refresh token (invalid_grant: expired or revoked); make a "
                "new one for scope https://mail.google.com/ and set it in "
                "INBOXOPS_IMAP_OAUTH_REFRESH_TOKEN (or [dmarc.imap] oauth_refresh_token / "
                "oauth_refresh_token_file)"
            )
        if error in _CREDENTIAL_ERRORS:
            raise ConfigError(
                f"Google refused OAuth client {imap.oauth_client_id} ({error}); check "
                "INBOXOPS_IMAP_OAUTH_CLIENT_ID and INBOXOPS_IMAP_OAUTH_CLIENT_SECRET"
            )
        raise ImapError(
            f"the Google token endpoint failed (HTTP {response.status_code}, {error}); rerun later"
        )


def _http_client(imap: ImapSettings) -> httpx.Client:
    """The HTTP client of both flows: the IMAP timeout, and ``oauth_ca_file`` if set."""
    verify: ssl.SSLContext | bool = True
    if imap.oauth_ca_file:
        try:
            verify = ssl.create_default_context(cafile=imap.oauth_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"[dmarc.imap] oauth_ca_file = {imap.oauth_ca_file!r} cannot be loaded "
                f"({type(exc).__name__}); give a PEM file of CA certificates"
            ) from None
    return httpx.Client(verify=verify, timeout=imap.timeout)


def _lifetime(value: object) -> float:
    """``expires_in`` as seconds; a provider that leaves it out gets the usual hour."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 3600.0
    return max(seconds, 0.0)


def _error_of(body: object) -> str:
    """The OAuth ``error`` code of a refusal, reduced to what is safe to print (a code, not
    the free-text description, which a provider may fill with anything)."""
    raw = body.get("error") if isinstance(body, dict) else None
    return raw if isinstance(raw, str) and _ERROR_CODE.fullmatch(raw) else "unknown_error"
