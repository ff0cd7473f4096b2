"""The JSON API of invitations and invited organisations: number, draft, approve, return, resubmit, send.

Each route checks its role (``central.auth``); the services validate, write and audit.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from central.api import bp
from central.api.helpers import context
from central.api.spec import Responses, errors, validate, validated_json, validated_query
from central.auth import current_actor, roles_required
from central.auth.roles import ADMINISTRATOR, APPROVER, ORGANISER, STAFF_ROLES
from central.core.states import DeliveryState
from central.invitations import deliveries, organisations
from central.invitations import schemas as i
from central.invitations import services as invitations


@bp.post("/organisations")
@roles_required(ORGANISER)
@validate(json=i.OrganisationCreate, resp=Responses(HTTP_201=i.Organisation, **errors(400, 401, 403, 409)))
def create_organisation() -> Any:
    """Create an invited organisation."""
    org = organisations.create_organisation(validated_json(), actor=current_actor(), now=context().clock())
    return jsonify(organisations.organisation_to_dict(org)), 201


@bp.post("/invitations")
@roles_required(ORGANISER)
@validate(json=i.InvitationCreate, resp=Responses(HTTP_201=i.Invitation, **errors(400, 401, 403, 409)))
def create_invitation() -> Any:
    """Draft the invitation of one organisation; only an approver's approval numbers and sends it."""
    invitation = invitations.draft_invitation(validated_json(), actor=current_actor(), now=context().clock())
    return jsonify(invitations.invitation_to_dict(invitation)), 201


@bp.get("/invitations")
@roles_required(*STAFF_ROLES)
@validate(query=i.InvitationQuery, resp=Responses(HTTP_200=i.InvitationList, **errors(400, 401, 403)))
def list_invitations() -> Any:
    """List invitations (``?status=``, ``?meeting_id=`` filter)."""
    query = validated_query()
    rows = invitations.list_invitations(query.status, query.meeting_id)
    return jsonify([invitations.invitation_to_dict(i) for i in rows])


@bp.post("/invitations/drafts")
@roles_required(ORGANISER)
@validate(json=i.InvitationDrafts, resp=Responses(HTTP_201=i.InvitationList, **errors(400, 401, 403, 409)))
def draft_invitations() -> Any:
    """Draft one invitation per organisation in ``organisation_ids``."""
    drafted = invitations.draft_invitations(validated_json(), actor=current_actor(), now=context().clock())
    return jsonify([invitations.invitation_to_dict(i) for i in drafted]), 201


@bp.get("/invitations/<int:invitation_id>")
@roles_required(*STAFF_ROLES)
@validate(resp=Responses(HTTP_200=i.Invitation, **errors(401, 403, 404)))
def get_invitation(invitation_id: int) -> Any:
    """Return an invitation with its per-channel delivery status."""
    return jsonify(invitations.invitation_to_dict(invitations.get_invitation(invitation_id), with_deliveries=True))


@bp.post("/invitations/<int:invitation_id>/approve")
@roles_required(APPROVER)
@validate(resp=Responses(HTTP_200=i.Invitation, **errors(401, 403, 404, 409)))
def approve_invitation(invitation_id: int) -> Any:
    """Approve: number the invitation and send it by e-mail and SMS."""
    ctx = context()
    approved = invitations.approve_invitation(
        invitation_id, actor=current_actor(), now=context().clock(), number_format=ctx.config.invitation_format,
        public_url=ctx.config.public_url,
    )
    deliveries.deliver_due(deliveries.current_senders(), now=context().clock(), invitation_id=invitation_id)
    return jsonify(invitations.invitation_to_dict(invitations.get_invitation(approved.invitation.id),
                                                  with_deliveries=True))


@bp.post("/invitations/<int:invitation_id>/return")
@roles_required(APPROVER)
@validate(json=i.InvitationReturn, resp=Responses(HTTP_200=i.Invitation, **errors(400, 401, 403, 404, 409)))
def return_invitation(invitation_id: int) -> Any:
    """Return a draft to the organiser with a ``comment`` (the clerk who drafted it is told by e-mail)."""
    ctx = context()
    invitation = invitations.return_invitation(invitation_id, validated_json()["comment"], actor=current_actor(),
                                               now=ctx.clock())
    invitations.notify_returned(invitation, now=ctx.clock(), mail_sender=ctx.mail_sender,
                                mail_from=ctx.config.mail_from)
    return jsonify(invitations.invitation_to_dict(invitation))


@bp.post("/invitations/<int:invitation_id>/resubmit")
@roles_required(ORGANISER)
@validate(json=i.InvitationResubmit, resp=Responses(HTTP_200=i.Invitation, **errors(400, 401, 403, 404, 409)))
def resubmit_invitation(invitation_id: int) -> Any:
    """Submit a returned invitation again (with its ``delegate_limit``, optionally another ``organisation_id``)."""
    invitation = invitations.resubmit_invitation(
        invitation_id, validated_json(), actor=current_actor(), now=context().clock()
    )
    return jsonify(invitations.invitation_to_dict(invitation))


@bp.post("/invitations/<int:invitation_id>/send")
@roles_required(*STAFF_ROLES)
@validate(resp=Responses(HTTP_200=i.Invitation, **errors(401, 403, 404, 409)))
def send_invitation(invitation_id: int) -> Any:
    """Retry every unsent channel of an approved invitation now ("gửi lại")."""
    invitation = invitations.get_invitation(invitation_id)
    pending = [d for d in invitation.deliveries if d.status != DeliveryState.SENT and d.link]
    for delivery in pending:
        deliveries.resend(delivery.id, actor=current_actor(), now=context().clock())
    deliveries.deliver_due(deliveries.current_senders(), now=context().clock(), invitation_id=invitation_id)
    return jsonify(invitations.invitation_to_dict(invitations.get_invitation(invitation_id), with_deliveries=True))


@bp.get("/organisations")
@roles_required(ORGANISER, APPROVER)
@validate(resp=Responses(HTTP_200=i.OrganisationList, **errors(401, 403)))
def list_organisations() -> Any:
    """List organisations."""
    return jsonify([organisations.organisation_to_dict(o) for o in organisations.list_organisations()])


@bp.patch("/organisations/<int:org_id>")
@roles_required(ADMINISTRATOR)
@validate(json=i.OrganisationUpdate, resp=Responses(HTTP_200=i.Organisation, **errors(400, 401, 403, 404, 409)))
def update_organisation(org_id: int) -> Any:
    """Change an organisation's name or contacts."""
    org = organisations.update_organisation(org_id, validated_json(), actor=current_actor(), now=context().clock())
    return jsonify(organisations.organisation_to_dict(org))
