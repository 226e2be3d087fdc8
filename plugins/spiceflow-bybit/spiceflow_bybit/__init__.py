"""SpiceFlow venue plugin for Bybit (venue ``bybit``)."""

__version__ = "0.1.0"
