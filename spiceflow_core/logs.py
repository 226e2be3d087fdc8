"""Logging, configured once: human-readable lines by default, or one JSON object per
line (``--log-format json``). Context fields (venue, actor, conn, instrument) are bound
with ``logger.bind`` where known and appear in both formats."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

import msgspec
import stamina.instrumentation
from loguru import logger

if TYPE_CHECKING:  # pragma: no cover
    from loguru import Message, Record  # defined by loguru's stubs only

_CONTEXT = ("venue", "actor", "conn", "instrument")
_json = msgspec.json.Encoder()


def _text_format(record: Record) -> str:
    extra = record["extra"]
    ctx = " ".join(f"{k}={extra[k]}" for k in _CONTEXT if k in extra)
    ctx = f" [{ctx}]" if ctx else ""
    return "{time:HH:mm:ss.SSS} {level: <7}" + ctx.replace("{", "{{").replace("}", "}}") + " {message}\n{exception}"


def _json_sink(stream: TextIO) -> Callable[[Message], None]:
    def sink(message: Message) -> None:
        record = message.record
        obj = {
            "ts": record["time"].isoformat(),
            "level": record["level"].name,
            "message": record["message"],
            **{
                k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
                for k, v in record["extra"].items()
            },
        }
        if record["exception"] is not None:
            obj["exception"] = repr(record["exception"].value)
        stream.write(_json.encode(obj).decode() + "\n")
        stream.flush()

    return sink


def configure_logging(level: str = "INFO", fmt: str = "text", stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    logger.remove()
    if fmt == "json":
        logger.add(_json_sink(stream), level=level, backtrace=False, diagnose=False)
    else:
        logger.add(stream, level=level, format=_text_format, backtrace=False, diagnose=False, colorize=False)


def _log_retry(details: stamina.instrumentation.RetryDetails) -> None:
    logger.debug(
        "retry #{} of {} in {:.2f}s after {}: {}",
        details.retry_num,
        details.name,
        details.wait_for,
        type(details.caused_by).__name__,
        details.caused_by,
    )


def route_retries_to_loguru() -> None:
    """stamina reports each retry to the standard library's logging by default, which
    this application does not configure; its retries go to loguru at DEBUG instead (the
    code that retries logs what matters at the right level itself)."""
    stamina.instrumentation.set_on_retry_hooks([_log_retry])
