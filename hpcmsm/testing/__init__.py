"""Test-suite plumbing used by ``./run test`` (not needed at run time)."""
