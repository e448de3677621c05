"""Protocol adapters: turn a foreign protocol's messages into the native stream records."""
