"""Notifications sent by central (e-mail now; SMS later), each behind a small sender interface."""
