"""The NATS sink plugin and its pluggy hook (entry point ``spiceflow.sinks: nats``)."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from spiceflow_core.sinks import Sink, SinkPlugin, hookimpl

from .config import NAME, NatsOptions


class NatsSinkPlugin(SinkPlugin):
    """``[sinks.nats]`` in spiceflow.toml turns it on (its keys: :class:`NatsOptions`)."""

    name: ClassVar[str] = NAME
    options_type: ClassVar[type[msgspec.Struct]] = NatsOptions

    def create(self, options: msgspec.Struct) -> Sink:
        if not isinstance(options, NatsOptions):
            raise TypeError(f"expected NatsOptions, got {type(options).__name__}")
        # imported here: nats-py loads only in a run that configures the sink, not in
        # every command that discovers the sink plugins
        from .sink import NatsSink

        return NatsSink(options)


@hookimpl
def spiceflow_sinks() -> list[SinkPlugin]:
    return [NatsSinkPlugin()]
