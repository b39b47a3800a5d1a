"""Messaging mechanisms: broker connection and topology, transactional outbox, idempotent inbox."""
