"""API keys: creation, revocation, lookup and the request dependency that enforces them."""
