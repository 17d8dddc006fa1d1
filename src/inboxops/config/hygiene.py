"""Settings of list hygiene: the exclusion list and the listmonk instances it is applied to.

Same rules as every section (see :mod:`inboxops.config`): each field is a TOML key, checked for
its type, with an ``INBOXOPS_*`` override where ``env=`` says so. Two things are beyond what a
declared field can say, and live here:

* ``INBOXOPS_LISTMONK_<NAME>_TOKEN`` (and ``..._TOKEN_FILE``) give the token of the instance
  called ``<name>``: the variable's name depends on the configured names, so it is read by
  :func:`listmonk_instances` when a listmonk command starts, not by the generic loader.
* ``[listmonk] url``, ``user`` and ``token`` (``INBOXOPS_LISTMONK_URL``, ``_USER``, ``_TOKEN``)
  describe one instance called ``default``, for a single listmonk configured by environment.

Instance names are checked when the file is loaded: unique, and made of characters that can
appear in an environment variable's name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from inboxops.config.schema import ENV_PREFIX, Secret, read_secret_file, setting
from inboxops.errors import ConfigError

if TYPE_CHECKING:
    from inboxops.listmonk.model import AuthStyle, ListmonkInstance

DEFAULT_INSTANCE = "default"
AUTH_CHOICES = ("auto", "token", "basic")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _rule(text: str) -> str:
    """An exclusion rule, checked for its shape when the file is loaded (operator names are
    checked against the operator table when the rules are used)."""
    from inboxops.hygiene.exclusions import parse_rule

    return parse_rule(text).text  # ValueError says what is wrong


def token_env(name: str) -> str:
    """``INBOXOPS_LISTMONK_<NAME>_TOKEN``: where the token of instance ``name`` may come from."""
    return f"{ENV_PREFIX}LISTMONK_{name.upper()}_TOKEN"


@dataclass(frozen=True)
class ExclusionSettings:
    """[exclusions]: the domains and operators we never mail (``inboxops listmonk scrub``).

    ``rules`` and every line of every file in ``files`` are one rule each: ``icloud.com`` (that
    domain), ``*.example.com`` (its subdomains), ``operator:apple`` (any domain whose MX is
    Apple's). Files are read when a command uses them, so a missing file stops that command.
    """

    rules: tuple[str, ...] = setting((), parse=_rule)
    files: tuple[str, ...] = setting(())


@dataclass(frozen=True)
class ListmonkInstanceSettings:
    """One ``[[listmonk.instances]]`` table: a listmonk server and the API user inboxops uses."""

    name: str = setting("")
    url: str = setting("")
    user: str = setting("")  # API user (v4+) or the admin user (v2/v3 BasicAuth)
    token: Secret = setting(factory=lambda: Secret(""))
    timeout: float = setting(30.0, minimum=1, maximum=600)
    auth: str = setting("auto", choices=AUTH_CHOICES, lower=True)


@dataclass(frozen=True)
class ListmonkSettings:
    """[listmonk]: the instances list hygiene works on.

    ``url``/``user``/``token`` are the single instance ``default`` (mostly from the
    environment); ``instances`` are named ones (``[[listmonk.instances]]``). Both may be given.
    """

    url: str = setting("", env="LISTMONK_URL")
    user: str = setting("", env="LISTMONK_USER")
    token: Secret = setting(factory=lambda: Secret(""), env="LISTMONK_TOKEN")
    instances: tuple[ListmonkInstanceSettings, ...] = setting(())

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for n, inst in enumerate(self.instances, 1):
            where = f"[[listmonk.instances]] number {n}"
            if not inst.name:
                raise ConfigError(f'{where} has no name; give it one, e.g. name = "main"')
            if not _NAME.fullmatch(inst.name):
                raise ConfigError(
                    f"{where}: name {inst.name!r} must be 1 to 32 lower-case letters, digits or "
                    f"_ and start with a letter (it is used in {token_env('NAME')})"
                )
            if inst.name in seen:
                raise ConfigError(f"{where}: the name {inst.name!r} is used twice; names differ")
            seen.add(inst.name)
            if not inst.url:
                raise ConfigError(f"{where} ({inst.name}) has no url")
        if self.url and DEFAULT_INSTANCE in seen:
            raise ConfigError(
                "[listmonk] url (INBOXOPS_LISTMONK_URL) describes the instance 'default', and "
                "[[listmonk.instances]] has one called 'default' too; rename one of them"
            )

    @property
    def names(self) -> list[str]:
        """Instance names in config order (``default`` first when it is configured)."""
        head = [DEFAULT_INSTANCE] if self.url else []
        return head + [i.name for i in self.instances]


def listmonk_instances(
    settings: ListmonkSettings, env: Mapping[str, str], only: tuple[str, ...] = ()
) -> list[ListmonkInstance]:
    """The configured instances (``only``: these, in this order), tokens from the environment
    applied, each checked by :class:`~inboxops.listmonk.model.ListmonkInstance`.

    Raises :class:`ConfigError` when none is configured, a name is unknown, or an instance
    lacks what it needs (a url, a user with its token).
    """
    from inboxops.listmonk.model import ListmonkInstance

    if (settings.user or settings.token) and not settings.url:
        raise ConfigError(
            "[listmonk] user or token (INBOXOPS_LISTMONK_USER, INBOXOPS_LISTMONK_TOKEN) is set "
            "but no url; set INBOXOPS_LISTMONK_URL for the instance 'default', or give the "
            "token to a named instance (INBOXOPS_LISTMONK_<NAME>_TOKEN)"
        )
    if not settings.names:
        raise ConfigError(
            "no listmonk instance is configured; add a [[listmonk.instances]] table (name, url, "
            "user, token) to the config, or set INBOXOPS_LISTMONK_URL, INBOXOPS_LISTMONK_USER "
            "and INBOXOPS_LISTMONK_TOKEN"
        )
    unknown = [n for n in only if n not in settings.names]
    if unknown:
        raise ConfigError(
            f"no listmonk instance called {unknown[0]!r}; configured: " + ", ".join(settings.names)
        )
    wanted = list(dict.fromkeys(only)) or settings.names
    configured = {i.name: i for i in settings.instances}
    out: list[ListmonkInstance] = []
    for name in wanted:
        inst = configured.get(name)
        if inst is None:  # the default instance
            url, user, token = settings.url, settings.user, settings.token
            timeout, auth = 30.0, "auto"
            where_token = f"{ENV_PREFIX}LISTMONK_TOKEN"
        else:
            url, user, token, timeout, auth = (
                inst.url,
                inst.user,
                _env_token(name, env) or inst.token,
                inst.timeout,
                inst.auth,
            )
            where_token = f"{token_env(name)} or token / token_file in its [[listmonk.instances]]"
        if user and not token:
            raise ConfigError(
                f"listmonk instance {name!r} has user {user!r} but no token; set {where_token}"
            )
        if token and not user:
            raise ConfigError(
                f"listmonk instance {name!r} has a token but no user; set the API user's name "
                "(INBOXOPS_LISTMONK_USER or user in [[listmonk.instances]])"
            )
        out.append(
            ListmonkInstance(
                name=name,
                url=url,
                user=user,
                token=token,
                timeout=timeout,
                auth=cast("AuthStyle", auth),  # checked against AUTH_CHOICES on load
            )
        )
    return out


def _env_token(name: str, env: Mapping[str, str]) -> Secret | None:
    var = token_env(name)
    if env.get(var):
        return Secret(env[var].strip())
    if env.get(var + "_FILE"):
        return Secret(read_secret_file(env[var + "_FILE"], var + "_FILE"))
    return None
