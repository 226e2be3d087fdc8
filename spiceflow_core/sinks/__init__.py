"""Sinks: where published wire messages go besides the built-in ZeroMQ publisher,
provided by plugins (``spiceflow.sinks`` entry points). See ``contract``."""

from spiceflow_core.sinks.contract import BufferedSink, Sink, SinkPlugin, SinkStats, hookimpl

__all__ = ["BufferedSink", "Sink", "SinkPlugin", "SinkStats", "hookimpl"]
