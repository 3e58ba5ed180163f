"""The dashboard: pages over the shared report, and the server that serves them."""
