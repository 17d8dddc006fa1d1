"""An OAuth2 identity provider on loopback: the far end of ``auth = "xoauth2"``.

One double plays both sides a real mailbox login involves:

* for the client (inboxops), over **HTTPS** with a self-signed certificate (msal accepts only
  https authorities; the client trusts the certificate through ``oauth_ca_file``, nothing is
  patched): a Microsoft Entra tenant (OIDC discovery + a client-credentials token endpoint)
  and a Google-style refresh-token endpoint;
* for the real Dovecot, over plain HTTP on 127.0.0.1: an RFC 7662 introspection endpoint that
  its ``oauth2`` passdb asks whether a presented token is active, and for whom.

It records every grant and every introspection, can expire issued tokens and revoke the
credentials, so a test sees exactly which token reached the server and whether it was good.
"""

from __future__ import annotations

import secrets
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from inboxops.config import ImapSettings, Secret
from tests.servers.dovecot import USER, self_signed_cert
from tests.servers.telegram import _read_body, _send_json

TENANT = "contoso-tenant-id"
CLIENT_ID = "inboxops-test-client"
CLIENT_SECRET = "oauth-client-secret-Xv9"
REFRESH_TOKEN = "1//refresh-token-never-printed-Q4"
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_PATH = "/google/token"


@dataclass
class Issued:
    """One access token as the provider sees it."""

    value: str
    user: str
    expires_at: float  # wall clock, like a real provider
    revoked: bool = False

    def active(self, now: float) -> bool:
        return not self.revoked and now < self.expires_at


@dataclass
class OAuthDouble:
    """State of the provider: what it issued, what it was asked, what it will refuse."""

    url: str = ""  # https://127.0.0.1:PORT (the client side)
    introspection_url: str = ""  # http://127.0.0.1:PORT/introspect (Dovecot's side)
    ca_file: Path = Path()
    lifetime: int = 3600  # expires_in of every issued token
    user: str = USER  # the mailbox tokens are issued for
    grants: list[str] = field(default_factory=list)  # "microsoft" / "google", one per token
    refused: list[str] = field(default_factory=list)  # OAuth error codes answered
    introspections: list[tuple[str, bool]] = field(default_factory=list)  # (token, active)
    revoked: bool = False  # the client secret and the refresh token no longer work
    tokens: dict[str, Issued] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self._lock:
            self.lifetime = 3600
            self.user = USER
            self.grants.clear()
            self.refused.clear()
            self.introspections.clear()
            self.tokens.clear()
            self.revoked = False

    def expire_all(self) -> None:
        """Every token issued so far has run out (as an hour passing would do)."""
        with self._lock:
            for issued in self.tokens.values():
                issued.expires_at = 0.0

    def revoke(self) -> None:
        """The operator revoked the app: secret, refresh token and issued tokens stop working."""
        with self._lock:
            self.revoked = True
            for issued in self.tokens.values():
                issued.revoked = True

    @property
    def presented_inactive(self) -> list[str]:
        """Tokens Dovecot was shown that were no longer (or never) good."""
        with self._lock:
            return [token for token, active in self.introspections if not active]

    def settings(self, base: ImapSettings, provider: str, **overrides: Any) -> ImapSettings:
        """``base`` (a Dovecot's settings) switched to XOAUTH2 against this provider."""
        values: dict[str, Any] = {
            "auth": "xoauth2",
            "password": Secret(""),
            "oauth_provider": provider,
            "oauth_client_id": CLIENT_ID,
            "oauth_client_secret": Secret(CLIENT_SECRET),
            "oauth_ca_file": str(self.ca_file),
        }
        if provider == "microsoft":
            values.update(oauth_tenant=TENANT, oauth_authority=self.url)
        else:
            values.update(
                oauth_refresh_token=Secret(REFRESH_TOKEN), oauth_token_url=self.url + GOOGLE_PATH
            )
        values.update(overrides)
        return replace(base, **values)

    def env(self, provider: str) -> dict[str, str]:
        """The same as environment variables, for the CLI."""
        env = {
            "INBOXOPS_IMAP_AUTH": "xoauth2",
            "INBOXOPS_IMAP_OAUTH_PROVIDER": provider,
            "INBOXOPS_IMAP_OAUTH_CLIENT_ID": CLIENT_ID,
            "INBOXOPS_IMAP_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
            "INBOXOPS_IMAP_OAUTH_CA_FILE": str(self.ca_file),
        }
        if provider == "microsoft":
            env.update(INBOXOPS_IMAP_OAUTH_TENANT=TENANT, INBOXOPS_IMAP_OAUTH_AUTHORITY=self.url)
        else:
            env.update(
                INBOXOPS_IMAP_OAUTH_REFRESH_TOKEN=REFRESH_TOKEN,
                INBOXOPS_IMAP_OAUTH_TOKEN_URL=self.url + GOOGLE_PATH,
            )
        return env

    # -- the provider's answers ---------------------------------------------------------------

    def _issue(self, kind: str) -> dict[str, Any]:
        value = f"{kind[:2]}-at-{secrets.token_urlsafe(24)}"
        with self._lock:
            self.tokens[value] = Issued(value, self.user, time.time() + self.lifetime)
            self.grants.append(kind)
        return {"token_type": "Bearer", "expires_in": self.lifetime, "access_token": value}

    def _refuse(self, status: int, error: str, description: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.refused.append(error)
        return status, {"error": error, "error_description": description}

    def microsoft_token(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != "client_credentials":
            return self._refuse(400, "unsupported_grant_type", "AADSTS70003: grant type")
        if form.get("client_id") != CLIENT_ID:
            return self._refuse(400, "unauthorized_client", "AADSTS700016: app not found")
        if form.get("client_secret") != CLIENT_SECRET or self.revoked:
            return self._refuse(
                401, "invalid_client", "AADSTS7000215: Invalid client secret provided."
            )
        if MICROSOFT_SCOPE not in str(form.get("scope", "")).split():
            return self._refuse(400, "invalid_scope", "AADSTS1002012: scope is not valid")
        return 200, self._issue("microsoft")

    def google_token(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != "refresh_token":
            return self._refuse(400, "unsupported_grant_type", "Invalid grant_type")
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return self._refuse(401, "invalid_client", "The OAuth client was not found.")
        if form.get("refresh_token") != REFRESH_TOKEN or self.revoked:
            return self._refuse(400, "invalid_grant", "Token has been expired or revoked.")
        body = self._issue("google")
        body["scope"] = "https://mail.google.com/"
        return 200, body

    def discovery(self, tenant: str) -> tuple[int, dict[str, Any]]:
        if tenant != TENANT:
            return 400, {"error": "invalid_tenant", "error_description": "AADSTS90002"}
        base = f"{self.url}/{TENANT}"
        return 200, {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        }

    def introspect(self, token: str) -> dict[str, Any]:
        with self._lock:
            issued = self.tokens.get(token)
            active = issued is not None and issued.active(time.time())
            self.introspections.append((token, active))
        if issued is None or not active:
            return {"active": False}
        return {"active": True, "username": issued.user, "exp": int(issued.expires_at)}


def _client_handler(double: OAuthDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return  # bodies carry secrets; the double stays as quiet as the client

        def do_GET(self) -> None:
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                _send_json(self, *double.discovery(parts[0]))
            else:
                _send_json(self, 404, {"error": "not_found"})

        def do_POST(self) -> None:
            form = _read_body(self)
            path = self.path.split("?")[0]
            if path == f"/{TENANT}/oauth2/v2.0/token":
                _send_json(self, *double.microsoft_token(form))
            elif path == GOOGLE_PATH:
                _send_json(self, *double.google_token(form))
            else:
                _send_json(self, 404, {"error": "not_found"})

    return Handler


def _introspection_handler(double: OAuthDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            # Dovecot's introspection_mode = post sends token=<token>, form-encoded
            _send_json(self, 200, double.introspect(str(_read_body(self).get("token", ""))))

    return Handler


@contextmanager
def _serving(
    handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None
) -> Iterator[int]:
    """A threaded HTTP(S) server on a free loopback port, shut down and closed afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def oauth_server() -> Iterator[OAuthDouble]:
    """The session's provider (the session's Dovecot asks its introspection endpoint)."""
    tmp = Path(tempfile.mkdtemp(prefix="inboxops-oauth-"))
    cert, key = self_signed_cert(tmp)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    double = OAuthDouble(ca_file=cert)
    with (
        _serving(_client_handler(double), tls) as https_port,
        _serving(_introspection_handler(double)) as http_port,
    ):
        double.url = f"https://127.0.0.1:{https_port}"
        double.introspection_url = f"http://127.0.0.1:{http_port}/introspect"
        yield double


@pytest.fixture
def oauth(oauth_server: OAuthDouble) -> OAuthDouble:
    """The provider with nothing issued and nothing revoked, for this test."""
    oauth_server.reset()
    return oauth_server
