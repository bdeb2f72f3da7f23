"""B6 baseline: python-json-logger's JsonFormatter set up to write the template's fields."""

from __future__ import annotations

import logging
from collections.abc import Mapping


def json_logger_formatter(identity: Mapping[str, object]) -> logging.Formatter:
    """ts, level, logger, msg, the identity fields, and every `extra=` key, as one JSON line."""
    # Imported here: without the dev dependency only B6 fails, not the whole run.
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger", "message": "msg"},
        static_fields=dict(identity),
        timestamp="ts",
    )
