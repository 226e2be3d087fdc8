"""The Parquet sink plugin and its pluggy hook (entry point ``spiceflow.sinks: parquet``)."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from spiceflow_core.sinks import Sink, SinkPlugin, hookimpl

from .config import NAME, ParquetOptions


class ParquetSinkPlugin(SinkPlugin):
    """``[sinks.parquet]`` in spiceflow.toml turns it on (its keys: :class:`ParquetOptions`)."""

    name: ClassVar[str] = NAME
    options_type: ClassVar[type[msgspec.Struct]] = ParquetOptions

    def create(self, options: msgspec.Struct) -> Sink:
        if not isinstance(options, ParquetOptions):
            raise TypeError(f"expected ParquetOptions, got {type(options).__name__}")
        # imported here: pyarrow (and numpy) loads only in a run that configures the sink, not in
        # every command that discovers the sink plugins
        from .sink import ParquetSink

        return ParquetSink(options)


@hookimpl
def spiceflow_sinks() -> list[SinkPlugin]:
    return [ParquetSinkPlugin()]
