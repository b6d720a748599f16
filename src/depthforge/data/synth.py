"""Procedural indoor scenes (being written)."""
