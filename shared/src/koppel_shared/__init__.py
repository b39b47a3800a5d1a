"""Koppel's common library: mechanisms shared by every service, never one service's business rules."""
