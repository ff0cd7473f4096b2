"""The invited organisation's registration pages (``/dang-ky/<số thư mời>?s=<secret>``).

:func:`init_registration` registers the blueprint and the invitation guess counter on an app.
"""

from __future__ import annotations

from central.registration.views import bp, init_registration

__all__ = ["bp", "init_registration"]
