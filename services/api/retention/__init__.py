"""Retention: raw stores and rollups dropped past their policy, never before the rollups
have what they need."""
