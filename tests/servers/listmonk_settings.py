"""Settings in the listmonk double: a representative subset of listmonk's settings, masked on
GET, unmarshalled over the stored shape on a full PUT (an omitted key zeroed, a wrong type a
400, secrets kept only for ``""``), ``PUT /api/settings/:key`` on v6+, then a reload that drops
the next connections (or ``needs_restart`` while a campaign runs)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from typing import Any

from tests.servers.listmonk_api import MASK, SECRET_PATHS, ApiUser, HttpError, Request, body_of

# a representative subset of listmonk's settings, secrets (see SECRET_PATHS) included
SETTINGS = """{
  "app.site_name": "Mailing list", "app.root_url": "http://localhost:9000",
  "app.from_email": "listmonk <noreply@listmonk.example.com>",
  "app.notify_emails": ["admin@listmonk.example.com"], "app.concurrency": 10,
  "app.message_rate": 10, "app.batch_size": 1000, "app.max_send_errors": 1000,
  "app.message_sliding_window": false, "app.message_sliding_window_duration": "1h",
  "app.message_sliding_window_rate": 10000, "privacy.individual_tracking": false,
  "privacy.domain_blocklist": [], "upload.provider": "filesystem",
  "upload.s3.aws_access_key_id": "AKIAEXAMPLE", "upload.s3.aws_secret_access_key": "s3-secret",
  "smtp": [
    {"name": "primary", "enabled": true, "host": "smtp.example.net", "port": 587,
     "username": "mailer", "password": "smtp-secret-value", "max_conns": 10},
    {"name": "backup", "enabled": false, "host": "smtp2.example.net", "port": 587,
     "username": "mailer2", "password": "smtp2-secret-value", "max_conns": 10}],
  "messengers": [], "bounce.enabled": false, "bounce.webhooks_enabled": false,
  "bounce.sendgrid_key": "sendgrid-secret",
  "bounce.postmark": {"enabled": false, "username": "pm", "password": "postmark-secret"},
  "bounce.mailboxes": [{"enabled": false, "host": "pop.example.net", "password": "pop-secret"}],
  "bounce.actions": {"soft": {"count": 2, "action": "none"},
    "hard": {"count": 1, "action": "blocklist"}, "complaint": {"count": 1, "action": "blocklist"}}
}"""


def default_settings(major: int) -> dict[str, Any]:
    settings: dict[str, Any] = json.loads(SETTINGS)
    if major >= 5:
        settings["privacy.domain_allowlist"] = []
    return settings


def _secret_slots(obj: Any, path: Sequence[str]) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every secret ``path`` reaches in a settings object."""
    head, rest = path[0], path[1:]
    if head == "*":
        items: list[tuple[Any, Any]] = list(enumerate(obj)) if isinstance(obj, list) else []
    else:
        items = [(head, obj[head])] if isinstance(obj, dict) and head in obj else []
    for key, value in items:
        if rest:
            yield from _secret_slots(value, rest)
        else:
            yield obj, key


def _kind(value: Any) -> str:
    return "bool" if isinstance(value, bool) else type(value).__name__


def _conform(stored: Any, sent: Any, key: str) -> Any:
    """``sent`` unmarshalled over the shape of ``stored``, as Go does into models.Settings:
    an omitted key becomes its zero value, a wrong type is a 400, unknown keys are dropped."""
    if isinstance(stored, dict):
        sent = sent if isinstance(sent, dict) else {}
        return {k: _conform(v, sent.get(k, _zero(v)), f"{key}.{k}") for k, v in stored.items()}
    if _kind(sent) != _kind(stored) and not (_kind(stored) == "int" and _kind(sent) == "float"):
        raise HttpError(400, f"Invalid value for {key}")
    return sent


def _zero(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _zero(v) for k, v in value.items()}
    return type(value)()


class SettingsHandlers:
    """The settings endpoints, mixed into :class:`~tests.servers.listmonk_store.ListmonkStore`."""

    settings: dict[str, Any]
    campaign_running: bool
    reload_drops: int
    _reload_left: int

    def _h_get_api_settings(self, req: Request, user: ApiUser | None) -> Any:
        masked = copy.deepcopy(self.settings)
        for path in SECRET_PATHS:
            for container, key in _secret_slots(masked, path):
                if container[key]:
                    container[key] = MASK * len(container[key])
        return masked

    def _h_put_api_settings(self, req: Request, user: ApiUser | None) -> Any:
        sent = body_of(req)
        new = {
            k: _conform(v, sent[k], k) if k in sent else _zero(v) for k, v in self.settings.items()
        }
        for path in SECRET_PATHS:  # "" keeps the stored secret; anything else is stored
            stored = [c[k] for c, k in _secret_slots(self.settings, path)]
            for index, (container, key) in enumerate(_secret_slots(new, path)):
                if container[key] == "" and index < len(stored):
                    container[key] = stored[index]
        if not any(s.get("enabled") for s in new.get("smtp", []) if isinstance(s, dict)):
            raise HttpError(400, "At least one SMTP server must be enabled.")
        self.settings = new
        return self._reload()

    def _h_put_api_settings_key(self, req: Request, user: ApiUser | None, key: str) -> Any:
        if key in self.settings:  # UPDATE ... WHERE key = $1: no validation, no allow-list
            self.settings[key] = req.body
        return self._reload()

    def _reload(self) -> Any:
        if self.campaign_running:
            return {"needs_restart": True}
        self._reload_left = self.reload_drops
        return True
