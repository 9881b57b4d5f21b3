"""Persistence of resources: the `Store` protocol and its implementations."""
