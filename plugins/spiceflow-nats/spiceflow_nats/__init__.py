"""SpiceFlow sink plugin for NATS: every wire message published on a NATS subject (the
topic), optional JetStream retention (last book per instrument, trades by age/size),
and ``nats://`` addresses for the core's subscribers and ``spiceflow tail``."""

__version__ = "0.1.0"
