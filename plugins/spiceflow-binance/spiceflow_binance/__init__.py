"""SpiceFlow venue plugin for Binance: spot (``binance``), USD-M futures
(``binance-usdm``) and COIN-M futures (``binance-coinm``)."""

__version__ = "0.1.0"
