"""Koppel collection service: Invoices, the collection policy, subscriptions, pay links and payment states."""
