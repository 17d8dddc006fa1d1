"""What the listmonk client tests share (a pytest plugin, see conftest.py): waits recorded
instead of slept, clients made and closed per test, every log line captured."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from inboxops.errors import ListmonkError
from inboxops.listmonk import ListmonkClient, ListmonkInstance
from tests.servers.listmonk import ListmonkDouble

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
