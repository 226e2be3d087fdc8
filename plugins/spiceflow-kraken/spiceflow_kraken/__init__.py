"""SpiceFlow venue plugin for Kraken (venue ``kraken``)."""

__version__ = "0.1.0"
