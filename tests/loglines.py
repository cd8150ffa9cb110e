"""Capture the log lines of this process as production writes them, parsed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from paymesh.platform.logging import json_formatter

__all__ = ["captured", "only"]


@contextmanager
def captured() -> Iterator[list[dict[str, Any]]]:
    """The lines logged inside the block, each parsed once the block ends (a line that
    is not one JSON object fails the test)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(json_formatter())
    logging.getLogger().addHandler(handler)
    parsed: list[dict[str, Any]] = []
    try:
        yield parsed
    finally:
        logging.getLogger().removeHandler(handler)
        for line in out.getvalue().splitlines():
            value = json.loads(line)
            assert isinstance(value, dict), line
            parsed.append(value)


def only(lines: list[dict[str, Any]], event: str, **fields: Any) -> dict[str, Any]:
    """The one line of `event` (with these field values); fails unless there is exactly one."""
    found = [
        line
        for line in lines
        if line.get("event") == event and all(line.get(k) == v for k, v in fields.items())
    ]
    assert len(found) == 1, (event, fields, lines)
    return found[0]
