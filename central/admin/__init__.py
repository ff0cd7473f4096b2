"""Administration pages: users, organisations, venues and the audit log (administrators only)."""
