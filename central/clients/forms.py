"""The form of a new API client (validation is the service's; the form carries CSRF and renders fields)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, StringField, widgets

from central.clients.scopes import SCOPE_LABELS_VI


class ApiClientForm(FlaskForm):
    """Create an API client: its name and scopes."""

    name = StringField(_l("Tên ứng dụng (ví dụ ioffice)"))
    scopes = SelectMultipleField(
        _l("Quyền"),
        choices=[(scope, _l(label)) for scope, label in SCOPE_LABELS_VI.items()],
        option_widget=widgets.CheckboxInput(),
        widget=widgets.ListWidget(prefix_label=False),
        validate_choice=False,
    )


class RevokeForm(FlaskForm):
    """A revoke button: only the CSRF token."""
