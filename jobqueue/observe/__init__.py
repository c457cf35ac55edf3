"""Metrics, logs and the event ledger: what a running jobqueue tells its operator."""
