"""Rollups: per-minute and per-hour aggregates per device, maintained by the API's own code.

The Apache edition of TimescaleDB has no continuous aggregates, so long ranges read these
tables instead of raw rows; see `specs` (what is aggregated), `maintain` (who keeps them
current) and `cover` (how a query mixes hours, minutes and raw rows exactly).
"""
