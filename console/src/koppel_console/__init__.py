"""The operators' console: server-rendered pages over the services' own REST APIs."""
