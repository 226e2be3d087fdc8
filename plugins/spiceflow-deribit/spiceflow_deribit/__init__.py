"""SpiceFlow venue plugin for Deribit: books, trades, tickers and reference data over
JSON-RPC 2.0, with a protocol-faithful loopback simulator."""

__version__ = "0.1.0"
