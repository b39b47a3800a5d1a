"""Koppel mandate service: Mandates and their lifecycle: the ERP's mandate API, Twikey signing states."""
