"""Messaging of central: MQTT publishing to gates, check-in ingest, the change feed, broker auth.
Imports core; no feature package."""
