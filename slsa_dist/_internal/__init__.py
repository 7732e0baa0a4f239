"""Machinery behind the public modules. Not a public API."""
