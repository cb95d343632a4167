"""``log.format: json``: one JSON object per line, for a log shipper (Loki, Elastic, CloudWatch).

The fields an operator filters on are fields, not text to grep: ``call_sid``, ``stream_sid`` and
``node`` come from the record's ``extra`` or, since most of our lines say ``call_sid=…`` in the
message, from the message itself; ``pid`` (and ``worker`` under ``serve --workers``) tells the
processes sharing a port apart. Every string is masked (``agent.logs.mask``) before it is
serialised: masking the finished line would miss a phone number after an escaped newline.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime

# Call-scoped fields, in the order they appear in a line; "" = not known for this record.
CONTEXT_FIELDS = ("call_sid", "stream_sid", "node")
_IN_MESSAGE = {name: re.compile(rf"\b{name}=([^\s,;:]+)") for name in CONTEXT_FIELDS}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "pid", ["worker"], [call fields], ["exc"]}``."""

    def __init__(self, mask: Callable[[str], str], worker: str = "") -> None:
        super().__init__()
        self._mask = mask
        self._worker = worker

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._mask(message),
            "pid": record.process,
        }
        if self._worker:
            line["worker"] = self._worker
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if not isinstance(value, str):
                found = _IN_MESSAGE[name].search(message)
                value = found.group(1) if found else None
            if value:
                line[name] = self._mask(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = self._mask(record.exc_text)
        if record.stack_info:
            line["stack"] = self._mask(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)
