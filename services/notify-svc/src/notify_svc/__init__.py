"""Koppel notify service: The ERP hears every status change: signed webhooks out and a replayable event feed."""
