"""The one exception tree of inboxops.

Everything the code raises on purpose derives from :class:`InboxopsError`; the CLI catches that
base class once, prints ``Error: <message>`` on one line and exits with ``exit_code``. A message
always says what to do next, and never carries a secret (tokens, passwords, URLs with credentials).

    InboxopsError
    ├── ConfigError      bad or missing setting            exit 2
    ├── SourceError      a mailbox, file or API could not be read   exit 1
    │   ├── ImapError
    │   └── ListmonkError   a listmonk instance refused us or went away
    ├── ParseError       one input is not a usable report (counted, never fatal to a batch)
    │   ├── HostileInputError   bombs, DOCTYPE/entities, over-size input
    │   └── RefusedByDatabase   the database refused a value of this input
    ├── StorageError     the database refused or is unreachable   exit 1
    └── NotifyError      an alert channel refused the message     exit 1
"""

from __future__ import annotations


class InboxopsError(Exception):
    """Base class: a failure the user can act on, with a one-line message."""

    exit_code = 1

    def details(self) -> dict[str, object]:
        """Extra fields for the JSON error object a ``--json`` command prints on failure."""
        return {}


class ConfigError(InboxopsError):
    """A setting is missing, malformed or contradictory."""

    exit_code = 2


class SourceError(InboxopsError):
    """An input source (file, mailbox, API) could not be read."""


class ImapError(SourceError):
    """The IMAP server refused us or went away."""


class ParseError(InboxopsError):
    """One input is not a usable report; ``source`` says which one and ``position`` where."""

    def __init__(self, message: str, *, source: str = "", position: str = "") -> None:
        self.reason = message
        self.source = source
        self.position = position
        where = f"{source}: " if source else ""
        at = f" (at {position})" if position else ""
        super().__init__(f"{where}{message}{at}")


class HostileInputError(ParseError):
    """Input refused on purpose: a bomb, an entity declaration, or something over a size cap."""


class RefusedByDatabase(ParseError):
    """The database refused a value of this one input (a constraint, a type, an encoding):
    the input is quarantined and the batch goes on, unlike a :class:`StorageError`."""


class StorageError(InboxopsError):
    """The database could not be opened, migrated or written."""


class NotifyError(InboxopsError):
    """An alert channel refused or could not be reached; ``sent``/``failed`` name channels."""

    def __init__(
        self, message: str, *, sent: list[str] | None = None, failed: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.sent = list(sent or [])
        self.failed = list(failed or [])

    def details(self) -> dict[str, object]:
        return {"sent": self.sent, "failed": self.failed}


class ListmonkError(SourceError):
    """A listmonk instance refused a call, went away, or answered something unusable.

    The message names the instance and says what to change (a missing API permission, the
    token, the URL); it never carries the token.
    """
