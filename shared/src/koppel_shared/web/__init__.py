"""HTTP mechanisms for every service: app factory, problem+json errors, tenant authentication."""
