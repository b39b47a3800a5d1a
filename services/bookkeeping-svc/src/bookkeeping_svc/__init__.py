"""Koppel bookkeeping service: the only service that talks to Twinfield (memo bookings, matching, retries)."""
