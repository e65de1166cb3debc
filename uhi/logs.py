"""Logging set-up: human lines or JSON lines on stderr; data goes to stdout, never logs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

from uhi.redact import redact_text

__all__ = ["configure_logging", "JsonLineFormatter", "RedactingFilter"]

_STD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line (time, level, logger, message, extra fields): fits log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


class RedactingFilter(logging.Filter):
    """Redacts URL userinfo and signed query strings in every record before it is formatted:
    ``search.url`` may carry ``user:password@`` and asset hrefs may carry SAS signatures."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def configure_logging(verbosity: int = 0, *, json_lines: bool = False) -> None:
    """Route uhi's logs to stderr. verbosity: -1 quiet (warnings), 0 info, 1+ debug."""
    from uhi.progress import set_enabled

    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    set_enabled(verbosity >= 0 and not json_lines)  # no bars under -q or between JSON lines
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if json_lines:
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("uhi")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # chatty libraries stay at warnings unless asked for debug
    for name in ("rasterio", "botocore", "urllib3", "distributed", "numba", "pystac_client"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity > 1 else logging.WARNING)
