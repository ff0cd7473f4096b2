"""Integers from a URL, a query string or a form fit the database's 64-bit integer columns.

An id of 2**63 or more in ``/meetings/<int:meeting_id>`` or ``?meeting_id=`` would reach a query and fail
there (SQLite raises ``OverflowError``): it is refused at the edge instead, as a route that does not match
(404) or a parameter that is absent. :func:`install_bounded_integers` puts both rules on an app.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from flask import Flask, Request
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.routing import IntegerConverter, Map

from central.core.validation import DB_INT_MAX, DB_INT_MIN, fits_database


class BoundedIntConverter(IntegerConverter):
    """Flask's ``int`` converter, bounded to the database's range (an id beyond it matches no route: 404)."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = None, signed: bool = False) -> None:
        lowest = DB_INT_MIN if min is None else builtins.max(min, DB_INT_MIN)
        highest = DB_INT_MAX if max is None else builtins.min(max, DB_INT_MAX)
        super().__init__(map, fixed_digits=fixed_digits, min=lowest, max=highest, signed=signed)


def bounded_int(value: Any) -> int:
    """``int(value)``, refused with ``ValueError`` when it does not fit the database's integers."""
    number = int(value)
    if not fits_database(number):
        raise ValueError(f"{number} does not fit a 64-bit integer")
    return number


def _bounded(type: Callable[[str], Any]) -> Callable[[str], Any]:
    return bounded_int if type is int else type


class BoundedMultiDict(ImmutableMultiDict[str, str]):
    """Query and form parameters whose ``get(..., type=int)`` and ``getlist(..., type=int)`` treat an
    integer beyond the database's range like any other value that does not convert: absent.

    A multipart part without a usable name (werkzeug gives it the key ``None``) is dropped: code that walks the
    keys, Flask-WTF's CSRF lookup among them, expects strings.
    """

    def __init__(self, mapping: Any = None) -> None:
        if isinstance(mapping, list):
            mapping = [(key, value) for key, value in mapping if isinstance(key, str)]
        super().__init__(mapping)

    def get(self, key: str, default: Any = None, type: Any = None) -> Any:  # type: ignore[override]
        """Like ``MultiDict.get``; ``type=int`` is bounded."""
        if type is None:
            return super().get(key, default)
        return super().get(key, default, _bounded(type))

    def getlist(self, key: str, type: Any = None) -> Any:
        """Like ``MultiDict.getlist``; ``type=int`` is bounded."""
        if type is None:
            return super().getlist(key)
        return super().getlist(key, _bounded(type))


class BoundedRequest(Request):
    """The app's request: its ``args`` and ``form`` are :class:`BoundedMultiDict`."""

    parameter_storage_class = BoundedMultiDict


def install_bounded_integers(app: Flask) -> None:
    """Bound ``int`` in routes and in ``request.args``/``request.form``; call before any route is added."""
    app.url_map.converters["int"] = BoundedIntConverter
    app.request_class = BoundedRequest
