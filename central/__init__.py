"""vaora central: the Flask server (JSON API, code issue and e-mail, gate snapshots, check-in ingest)."""
