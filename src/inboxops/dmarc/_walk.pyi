"""Types of the C record walk (_walk.c): one aggregate report <record> read from lxml's tree."""

from typing import Any

from inboxops.dmarc.records import RecordValues

def bind(element_type: type) -> bool: ...
def record(element: Any) -> RecordValues | None: ...
