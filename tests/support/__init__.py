"""Shared test data and doubles: imported by tests of several packages."""
