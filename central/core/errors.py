"""Failures raised by the services, each carrying a reason code (and, for invalid input, the fields)."""

from __future__ import annotations

from protocols.reasons import Reason, describe


class ServiceError(Exception):
    """A service refused a request; ``reason`` is the code, ``message`` a Vietnamese explanation."""

    def __init__(self, reason: Reason, message: str | None = None) -> None:
        self.reason = reason
        self.message = message or describe(reason)
        super().__init__(f"{reason.value}: {self.message}")


class NotFoundError(ServiceError):
    """The thing asked for does not exist (or the caller may not know that it does)."""


class InvalidInputError(ServiceError):
    """Input failed validation; ``fields`` maps each bad field name to a Vietnamese message."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields
        super().__init__(Reason.MALFORMED, "; ".join(f"{k}: {v}" for k, v in fields.items()))


class DuplicateError(InvalidInputError):
    """Something with the same unique key exists already (a user name, an organisation, a venue, a gate id):
    a form shows the field's message, the JSON API answers 409 ``conflict`` with reason ``duplicate``."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(fields)
        self.reason = Reason.DUPLICATE


class ConflictError(ServiceError):
    """The request is valid but the current state forbids it (e.g. a cancelled meeting)."""
