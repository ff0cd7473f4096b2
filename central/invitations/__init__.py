"""Invitation pages: the approver's queue, an invitation's page with its sending status, and its actions."""
