"""Invoke task modules; ``tasks.py`` at the repository root composes them into one collection."""
