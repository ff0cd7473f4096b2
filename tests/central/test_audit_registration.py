"""Registration by an invited organisation is audited like every other state change."""

from __future__ import annotations

from central.core.audit import search
from central.core.db import database
from central.core.models import AuditEntry

from .conftest import Api


def test_registering_a_delegate_is_in_the_audit_log(api: Api) -> None:
    invitation = api.invitation()
    response = api.register(invitation, name="Nguyễn Văn An", email="an@example.vn")
    assert response.status_code == 201, response.get_json()
    with database.connection_context():
        entries = search(action="delegate.register")
        assert len(entries) == 1
        entry = entries[0]
        assert entry.actor == f"invitation:{invitation['number']}"
        assert entry.target == f"delegate:{response.get_json()['id']}"
        assert "Nguyễn Văn An" in entry.details
        assert AuditEntry.select().where(AuditEntry.action == "delegate.register").count() == 1


def test_a_refused_registration_leaves_no_audit_entry(api: Api) -> None:
    invitation = api.invitation()
    assert api.register(invitation, email="not-an-email").status_code == 400
    with database.connection_context():
        assert search(action="delegate.register") == []
