"""inboxops: a self-hosted deliverability control plane for teams that send their own mail."""

from __future__ import annotations

__version__ = "0.1.0"
