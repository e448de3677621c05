"""Broker credentials of every kind, issued, rotated and revoked through the API."""
