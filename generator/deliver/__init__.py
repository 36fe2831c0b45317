"""Sinks for the delivery plan: HTTP sender (``http.py``), its transport seam and ledger."""
