"""Webhooks: which hosts may be called (hosts.py) and how a delivery is signed (signing.py). The rows
are services/store/webhooks.py; the maintenance worker sends them (worker/webhooks.py)."""
