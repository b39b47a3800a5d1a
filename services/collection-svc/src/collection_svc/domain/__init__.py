"""Pure rules: no I/O imports."""
