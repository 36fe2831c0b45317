"""Sinks for the delivery plan and the truth stream.

- ``files.py``: NDJSON files (plain or deterministic gzip) and the people CSV (``shopsim generate``);
- ``http.py``: the HTTP sender, with its transport seam (``transport.py``) and ledger (``ledger.py``).
"""
