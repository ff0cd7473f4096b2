"""Shared core of central: db, audit, change log, signing keys, errors, request context and clock,
validation helpers. Core imports no feature package."""
