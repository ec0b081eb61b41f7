"""Fake third-party services for tests."""
