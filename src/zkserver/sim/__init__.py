"""A whole ensemble in one process, on virtual time, driven by a seed (see docs/testing.md)."""
