"""Database tables and clients of other systems."""
