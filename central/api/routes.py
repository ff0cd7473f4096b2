"""API routes: short functions that parse the request, call a service and shape the response."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Response, jsonify, request

from central.api import bp
from central.api.helpers import (
    bearer_token,
    context,
    json_body,
    unauthorized,
)
from central.auth import current_actor, roles_required
from central.auth.roles import ADMINISTRATOR, APPROVER, ORGANISER
from central.services import attendance, delegates, gates, invitations, meetings, organisations, snapshot
from protocols import payloads

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi.json"


@bp.post("/organisations")
@roles_required(ORGANISER)
def create_organisation() -> Any:
    """Create an invited organisation."""
    org = organisations.create_organisation(json_body(), actor=current_actor(), now=context().clock())
    return jsonify(organisations.organisation_to_dict(org)), 201


@bp.post("/meetings")
@roles_required(ORGANISER)
def create_meeting() -> Any:
    """Create a meeting."""
    meeting = meetings.create_meeting(json_body(), now=context().clock(), actor=current_actor())
    return jsonify(meetings.meeting_to_dict(meeting)), 201


@bp.get("/meetings/<int:meeting_id>")
@roles_required(ORGANISER, APPROVER)
def get_meeting(meeting_id: int) -> Any:
    """Return one meeting."""
    return jsonify(meetings.meeting_to_dict(meetings.get_meeting(meeting_id)))


@bp.get("/meetings/<int:meeting_id>/attendance")
@roles_required(ORGANISER, APPROVER)
def get_attendance(meeting_id: int) -> Any:
    """Return who was expected and who entered."""
    return jsonify(attendance.meeting_attendance(meetings.get_meeting(meeting_id)))


@bp.post("/invitations")
@roles_required(ORGANISER)
def create_invitation() -> Any:
    """Number an invitation at once (no approval step); the response is the only place its secret appears."""
    ctx = context()
    issued = invitations.create_invitation(
        json_body(), now=ctx.clock(), number_format=ctx.config.invitation_format, actor=current_actor()
    )
    body = invitations.invitation_to_dict(issued.invitation)
    body["secret"] = issued.secret
    body["registration_url"] = invitations.registration_url(
        ctx.config.public_url, issued.invitation.number, issued.secret
    )
    return jsonify(body), 201


@bp.post("/invitations/<path:number>/delegates")
def register_delegate(number: str) -> Any:
    """Register a delegate under an invitation (secret in ``X-Invitation-Secret``) and e-mail the code."""
    ctx = context()
    invitation = invitations.find_invitation(number, request.headers.get("X-Invitation-Secret"))
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


@bp.post("/gates")
@roles_required(ORGANISER, ADMINISTRATOR)
def register_gate() -> Any:
    """Register a gate; the response is the only place its token appears."""
    registered = gates.register_gate(json_body(), actor=current_actor(), now=context().clock())
    body = gates.gate_to_dict(registered.gate)
    body["token"] = registered.token
    return jsonify(body), 201


@bp.get("/gates/<gate_id>/snapshot")
def get_snapshot(gate_id: str) -> Any:
    """Return the gate's snapshot; authenticated by the gate's own token."""
    gate = gates.authenticate_gate(gate_id, bearer_token())
    if gate is None:
        return unauthorized("Sai mã truy cập của cổng")
    ctx = context()
    ctx.signing_key()  # make sure the signing key is registered before gates learn the key list
    stream = payloads.SNAPSHOT_STREAM_MEDIA_TYPE
    if request.accept_mimetypes.best_match(["application/json", stream]) == stream:
        # Line by line (header, entries, end): the gate validates and stores it without holding it whole.
        return Response(snapshot.stream_snapshot(gate, now=ctx.clock()), mimetype=stream)
    snap = snapshot.build_snapshot(gate, now=ctx.clock())
    return Response(payloads.encode(snap), mimetype="application/json")


@bp.get("/openapi.json")
def openapi() -> Any:
    """Return the OpenAPI 3.1 description of this API."""
    return Response(OPENAPI_PATH.read_bytes(), mimetype="application/json")

