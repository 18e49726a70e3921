"""Helpers for tests: service checks and real worker processes."""
