"""The JSON API of registration: an invited organisation registers its delegates with the invitation number.

Each route checks its role (``central.auth``); the services validate, write and audit.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from central.api import bp
from central.api.helpers import (
    context,
    json_body,
    json_error,
)
from central.invitations import services as invitations
from central.invitations.guesses import MESSAGE, TooManyGuessesError
from central.registration import delegates


@bp.post("/invitations/<path:number>/delegates")
def register_delegate(number: str) -> Any:
    """Register a delegate under an invitation (secret in ``X-Invitation-Secret``) and e-mail the code; 429 once
    this address used up its guesses at the number."""
    ctx = context()
    try:
        invitation = invitations.find_invitation(number, request.headers.get("X-Invitation-Secret"))
    except TooManyGuessesError as exc:
        response, status = json_error(429, "too_many_requests", exc.reason, MESSAGE)
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response, status
    delegate = delegates.register_delegate(
        invitation,
        json_body(),
        now=ctx.clock(),
        signing_key=ctx.signing_key,
        mail_sender=ctx.mail_sender,
        mail_from=ctx.config.mail_from,
        entry_opens_before=ctx.entry_opens_before,
    )
    return jsonify(delegates.delegate_to_dict(delegate)), 201
