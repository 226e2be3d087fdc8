"""SpiceFlow: real-time multi-venue crypto market data with exact L2 order books."""

__version__ = "0.1.0"
