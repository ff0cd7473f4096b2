"""The JSON API of registration: an invited organisation registers its delegates with the invitation number.

Each route checks its role (``central.auth``); the services validate, write and audit.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from central.api import bp
from central.api.helpers import context, json_error
from central.api.spec import Responses, errors, validate, validated_json
from central.core.states import ApprovalState
from central.invitations.guesses import MESSAGE, TooManyGuessesError
from central.registration import delegates
from central.registration import schemas as r
from central.registration import services as registration


@bp.post("/invitations/<path:number>/delegates")
@validate(json=r.DelegateCreate, headers=r.InvitationSecret, security=[],
          resp=Responses(HTTP_201=r.Delegate, **errors(400, 404, 409, 429)))
def register_delegate(number: str) -> Any:
    """Register a delegate under an invitation (secret in ``X-Invitation-Secret``) and e-mail the code.

    The same rules as the registration page and the file import (``registration.services.add_delegate``, which
    applies ``check_registrations``): open for registration
    (409 once the meeting is cancelled, over or past its deadline), no second delegate with the same e-mail
    (409), within the invitation's limit (409); 429 once this address used up its guesses at the number.
    When the meeting asks the office to approve registrations, the delegate is stored with ``approval``
    ``pending``: no code and no e-mail until a clerk or leader approves it.
    """
    ctx = context()
    try:
        invitation = registration.open_invitation(number, request.headers.get("X-Invitation-Secret"))
    except TooManyGuessesError as exc:
        response, status = json_error(429, "too_many_requests", exc.reason, MESSAGE)
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response, status
    deps = registration.Deps.of(ctx)
    now = ctx.clock()
    delegate = registration.add_delegate(invitation, validated_json(), now, deps)
    if delegate.approval == ApprovalState.APPROVED:  # a pending one is mailed when the office approves it
        delegates.send_code_email(delegate, mail_sender=ctx.mail_sender, mail_from=ctx.config.mail_from, now=now)
    return jsonify(delegates.delegate_to_dict(delegate)), 201
