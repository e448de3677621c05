"""Synthetic history for benchmarks and demos: weeks of device data in minutes."""
