"""Test support: fresh databases and broker names per test, so runs never collide."""
