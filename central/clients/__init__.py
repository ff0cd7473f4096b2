"""API clients: one token per machine client (e.g. the office's document system), with scopes.

Each client's token is shown once when it is made, stored only as a SHA-256 hash, listed by a short public
prefix, revocable, and every change is audited. ``central.auth`` turns a client's token into an identity
carrying its scopes; :mod:`central.clients.api` lets that identity reach only the routes its scopes name.
"""
