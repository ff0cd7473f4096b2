"""Guard desk: registering walk-ins, starting from the QR on their citizen ID card (CCCD).

``bp`` is the desk's blueprint (pages under ``/ban-tiep-don``, role guard); :mod:`central.desk.cccd` parses
the card's QR text.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("desk", __name__, url_prefix="/ban-tiep-don")

from central.desk import views  # noqa: E402,F401 - registers the routes on bp
