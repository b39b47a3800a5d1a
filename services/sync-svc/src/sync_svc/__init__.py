"""Koppel Twikey sync service: The only service that talks to Twikey: connections, webhooks, feeds, commands."""
