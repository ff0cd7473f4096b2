"""The administrators' page of API clients: the list, a form to create one (its token shown on that page
once), and a revoke button per client. Each action calls :mod:`central.clients.services`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, make_response, redirect, render_template, url_for
from flask_babel import gettext as _

from central.auth import admin_required, current_actor
from central.clients import services as clients
from central.clients.forms import ApiClientForm, RevokeForm
from central.clients.scopes import SCOPE_LABELS_VI
from central.core.errors import InvalidInputError, ServiceError
from central.web import apply_field_errors, clock_now, service_error_message

bp = Blueprint("clients", __name__, url_prefix="/admin/api-clients", template_folder="templates")


def _page(form: ApiClientForm, status: int, issued: clients.IssuedClient | None = None) -> Any:
    response = make_response(render_template(
        "clients/list.html", form=form, revoke_form=RevokeForm(), issued=issued, clients=clients.list_clients(),
        scope_labels=SCOPE_LABELS_VI,
    ), status)
    response.headers["Cache-Control"] = "no-store"  # a new token is on it: no copy in any cache
    return response


@bp.route("/", methods=["GET", "POST"], endpoint="index")
@admin_required
def index() -> Any:
    """List the API clients and create one; a new client's token is shown in this answer only."""
    form = ApiClientForm()
    if form.validate_on_submit():
        try:
            issued = clients.create_client({"name": form.name.data, "scopes": form.scopes.data or []},
                                           actor=current_actor(), now=clock_now())
        except InvalidInputError as exc:
            apply_field_errors(form, exc)
        else:
            return _page(ApiClientForm(formdata=None), 201, issued)
    return _page(form, 400 if form.is_submitted() else 200)


@bp.post("/<int:client_id>/revoke")
@admin_required
def revoke(client_id: int) -> Any:
    """Revoke a client's token (CSRF-protected button)."""
    form = RevokeForm()
    if not form.validate_on_submit():
        flash(_("Phiên làm việc đã hết hạn, vui lòng thử lại."), "error")
        return redirect(url_for("clients.index"))
    try:
        client = clients.revoke_client(client_id, actor=current_actor(), now=clock_now())
    except ServiceError as exc:
        flash(service_error_message(exc), "error")
    else:
        flash(_("Đã thu hồi mã truy cập của %(name)s.", name=client.name), "success")
    return redirect(url_for("clients.index"))
