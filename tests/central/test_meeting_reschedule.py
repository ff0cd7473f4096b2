"""Moving a meeting re-issues every registered delegate's code for the new window, on the change stream."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from central.core.changes import changes_since
from central.core.validity import DEFAULT_GRACE_AFTER_END
from central.meetings.services import update_meeting
from central.registration.models import Delegate
from protocols.codes import compact_hash, short_private_key, verify_signed
from protocols.reasons import Reason

from .conftest import START, Api


@pytest.mark.parametrize("scheme", ["compact", "signed"])
def test_moving_a_meeting_reissues_codes_for_the_new_window(app: Any, api: Api, db: None, scheme: str) -> None:
    invitation = api.invitation(api.meeting(scheme=scheme)["id"])
    assert api.register(invitation).status_code == 201
    meeting_id = invitation["meeting_id"]
    before = Delegate.get(Delegate.meeting == meeting_id)
    seq = max((change.seq for change in changes_since(0)), default=0)
    mailed: list[int] = []
    new_start, new_end = START + timedelta(days=1), START + timedelta(days=1, hours=2)
    update_meeting(meeting_id, {"starts_at": new_start.isoformat(), "ends_at": new_end.isoformat()}, START,
                   actor="chuyenvien", reissue=lambda delegate: mailed.append(delegate.id),
                   signing_key=app.extensions["vaora"].signing_key)

    after = Delegate.get_by_id(before.id)
    assert mailed == [before.id] and after.mail_status == "pending"
    assert after.code != before.code
    assert after.valid_until == new_end + DEFAULT_GRACE_AFTER_END and after.valid_from < new_start
    upserts = [c.body for c in changes_since(seq) if c.body.kind == "delegate_upsert"]
    assert [u.delegate.id for u in upserts] == [before.id]
    if scheme == "compact":
        assert after.code_hash == compact_hash(after.code) == upserts[0].delegate.code_hash
        assert after.credential != before.credential  # a new random code
    else:
        key = app.extensions["vaora"].signing_key()
        short = {key.key_id: short_private_key(key.private_key).public_key}
        result = verify_signed(after.code, {key.key_id: key.private_key.public_key()}, new_start, short)
        assert result.reason is Reason.OK and result.claims.valid_until == new_end + DEFAULT_GRACE_AFTER_END
        assert after.credential == before.credential  # the same key, meeting and attendee: passback still holds
        assert verify_signed(before.code, {key.key_id: key.private_key.public_key()}, new_end - timedelta(
            minutes=1), short).reason is not Reason.OK  # the old code's window has ended by then
