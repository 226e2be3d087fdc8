"""The control API: the HTTP server run by ``spiceflow run`` and its CLI client."""
