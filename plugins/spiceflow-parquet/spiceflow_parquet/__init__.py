"""SpiceFlow sink plugin for Parquet: books (top N levels), trades and tops written to
Hive-partitioned Parquet files (``feed/venue=/date=/hour=``), each file complete or
absent, and ``spiceflow export`` of recordings into the same layout."""

__version__ = "0.1.0"
