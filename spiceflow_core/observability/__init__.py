"""The pipeline seen from outside: Prometheus metrics (``prometheus``)."""
