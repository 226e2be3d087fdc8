"""SpiceFlow venue plugin for OKX (venue ``okx``)."""

__version__ = "0.1.0"
