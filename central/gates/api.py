"""The JSON API of gates: registering a gate and serving its signed snapshot (gate-token authenticated).

Each route checks its role (``central.auth``); the services validate, write and audit.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from central.api import bp
from central.api.helpers import bearer_token, context, unauthorized
from central.api.spec import Responses, amend, errors, validate, validated_json
from central.auth import current_actor, roles_required
from central.auth.roles import ADMINISTRATOR, ORGANISER
from central.gates import registry as gates
from central.gates import schemas as g
from central.gates import snapshot
from protocols import payloads


@bp.post("/gates")
@roles_required(ORGANISER, ADMINISTRATOR)
@validate(json=g.GateCreate, resp=Responses(HTTP_201=g.GateCreated, **errors(400, 401, 403, 409)))
def register_gate() -> Any:
    """Register a gate; the response is the only place its token appears."""
    registered = gates.register_gate(validated_json(), actor=current_actor(), now=context().clock())
    body = gates.gate_to_dict(registered.gate)
    body["token"] = registered.token
    return jsonify(body), 201


@bp.get("/gates/<gate_id>/snapshot")
@validate(resp=Responses(HTTP_200=payloads.Snapshot, **errors(401, 404)), security=[{"gateToken": []}],
          skip_validation=True)
def get_snapshot(gate_id: str) -> Any:
    """Return the gate's snapshot; authenticated by the gate's own token. A gate sending
    ``X-Vaora-Snapshot-Features: meeting-sites`` gets each meeting's ``sites`` (its main hall's and remote points'
    gate sites)."""
    gate = gates.authenticate_gate(gate_id, bearer_token())
    if gate is None:
        return unauthorized("Sai mã truy cập của cổng")
    ctx = context()
    ctx.signing_key()  # make sure the signing key is registered before gates learn the key list
    stream = payloads.SNAPSHOT_STREAM_MEDIA_TYPE
    # The meetings' sites (remote points) only to a gate that reads them: an older gate's models refuse the field.
    with_sites = snapshot.reads_meeting_sites(request.headers.get(payloads.SNAPSHOT_FEATURES_HEADER))
    if request.accept_mimetypes.best_match(["application/json", stream]) == stream:
        # Line by line (header, entries, end): the gate validates and stores it without holding it whole.
        grace = ctx.code_validity.grace_after_end
        return Response(snapshot.stream_snapshot(gate, now=ctx.clock(), grace_after_end=grace, with_sites=with_sites),
                        mimetype=stream)
    snap = snapshot.build_snapshot(gate, now=ctx.clock(), grace_after_end=ctx.code_validity.grace_after_end,
                                   with_sites=with_sites)
    return Response(payloads.encode(snap), mimetype="application/json")


amend("/api/v1/gates/{gate_id}/snapshot", "get", responses={"200": {
    "description": (f"The snapshot; with Accept: {payloads.SNAPSHOT_STREAM_MEDIA_TYPE}, one JSON line per part "
                    "(header, entries, end), so a gate stores it without holding it whole"),
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Snapshot"}},
        payloads.SNAPSHOT_STREAM_MEDIA_TYPE: {"schema": {"type": "string"}},
    },
}})
