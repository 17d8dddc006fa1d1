"""Running one hygiene job on every listmonk instance: a failing instance never stops the rest.

Scrub and prune share this loop: each instance gets its own result, a listmonk failure is
recorded in that result (the command then exits 1 naming it) and the next instance still runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from inboxops.errors import ListmonkError
from inboxops.listmonk import ListmonkClient, ListmonkInstance

log = logging.getLogger(__name__)

Connect = Callable[[ListmonkInstance], ListmonkClient]


class InstanceResult(Protocol):
    error: str | None


R = TypeVar("R", bound=InstanceResult)


def each_instance(
    instances: Sequence[ListmonkInstance],
    connect: Connect,
    new_result: Callable[[str], R],
    work: Callable[[ListmonkClient, R], None],
    job: str,
) -> list[R]:
    """``work`` on every instance in turn, each with a fresh result from ``new_result(name)``."""
    results = []
    for instance in instances:
        result = new_result(instance.name)
        try:
            with connect(instance) as client:
                work(client, result)
        except ListmonkError as exc:
            result.error = str(exc)
            log.error("event=listmonk_%s_failed instance=%s", job, instance.name)
        results.append(result)
    return results
