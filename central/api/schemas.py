"""Field types shared by the API's request and response models, and the one error body.

A request field runs the same validator the services, pages and CLI use (``central.core.validation``) and
declares the same constraints (``maxLength``, ``pattern``, bounds, enums) so they appear in the document. The
validator (a ``BeforeValidator``, listed after the ``Field`` so pydantic keeps the pattern in the schema) runs
first, so a refused value gets its Vietnamese message; the declared constraint then only repeats it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, StrictBool, StrictInt
from pydantic_core import PydanticCustomError

from central.core import validation as v

MAX_ID = 2**63 - 1
"""The largest id a row can have (a signed 64-bit integer)."""

NOT_BLANK = r"\S"
"""A required text has a character other than white space (it is stripped)."""

TEXT_RULE = "Stripped of surrounding white space; no control characters."


def check(validator: Callable[..., Any], *args: Any, **kwargs: Any) -> BeforeValidator:
    """Run one of the shared field validators; its Vietnamese message becomes the field's error."""

    def run(value: Any) -> Any:
        try:
            return validator(value, *args, **kwargs)
        except v.FieldError as exc:
            raise PydanticCustomError("field_error", str(exc)) from None

    return BeforeValidator(run)


Id = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
"""A row id."""


def text(max_length: int, *, required: bool, multiline: bool = False, description: str = "") -> Any:
    """A text field checked by :func:`central.core.validation.text` (or ``multiline_text``)."""
    validator = v.multiline_text if multiline else v.text
    rule = TEXT_RULE if not multiline else "Line breaks allowed; " + TEXT_RULE[0].lower() + TEXT_RULE[1:]
    return Annotated[
        str,
        Field(max_length=max_length, pattern=NOT_BLANK if required else None,
              description=f"{description} {rule}".strip()),
        check(validator, required=required, max_length=max_length),
    ]


Email = Annotated[
    Annotated[str, Field(max_length=254, json_schema_extra={"format": "email"})] | None,
    check(v.email, required=False),
    Field(description="An e-mail address (the domain is stored lower-case)."),
]
"""An optional e-mail address."""

RequiredEmail = Annotated[
    str, Field(max_length=254, json_schema_extra={"format": "email"}, description="An e-mail address."),
    check(v.email, required=True),
]

Phone = Annotated[
    Annotated[str, Field(max_length=30, pattern=r"^[0-9+ .()\-]*$")] | None,
    check(v.phone),
    Field(description="A Vietnamese phone number (0912345678, +84 912 345 678, landlines 02...); "
                      "stored as +84..."),
]
"""An optional Vietnamese phone number."""

SiteId = Annotated[
    str,
    Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$",
          description="Lower-case letters, digits, '-' and '_', at most 32."),
    check(v.site_id),
]
"""A gate or site id."""

AwareDatetime = Annotated[
    datetime, Field(description="ISO 8601 with a timezone offset, e.g. 2025-03-01T08:00:00+07:00."),
    check(v.aware_datetime),
]
"""A date and time with its offset."""

Bool = StrictBool


class ErrorBody(BaseModel):
    """Every error the API answers: a name, a reason code and a Vietnamese message (and, for invalid input,
    the message of each bad field)."""

    error: str = Field(description="invalid, malformed, unauthorized, forbidden, not_found, conflict, refused, "
                                   "too_large, method_not_allowed, internal_error, ...")
    reason: str = Field(description="A reason code (protocols.reasons)")
    message: str = Field(description="Vietnamese, for people")
    fields: dict[str, str] | None = Field(default=None, description="Each bad field and why (400 invalid)")
    meeting_id: int | None = Field(default=None, description="The meeting a duplicate external_id or a reused "
                                                              "Idempotency-Key already has (409, 422)")
    scopes: list[str] | None = Field(default=None, description="The scopes of the client's token (403)")
    earliest_day: str | None = Field(default=None, json_schema_extra={"format": "date"},
                                     description="booking_too_late (409): the first day a meeting with remote "
                                                 "points booked now may be held")
    min_working_days: int | None = Field(default=None, description="booking_too_late (409): the working days "
                                                                   "ahead the rule asks")
    other_meeting_id: int | None = Field(default=None, description="venue_double_booked (409): the overlapping "
                                                                   "meeting that has the hall")
    venue: str | None = Field(default=None, description="venue_double_booked (409): the hall booked twice")
