"""The API's description by code: spectree validates each route's request and response against pydantic models
and generates the OpenAPI document from them.

- :data:`api_spec` is the one :class:`spectree.SpecTree`; each route is decorated with ``@validate(...)``
  (inside its role check, so an unauthenticated caller gets 401 before any validation).
- A JSON body is parsed as the API always did (:func:`central.api.helpers.json_body`: not JSON, or not an
  object, is 400 ``malformed``), whatever its ``Content-Type``; then the route's model checks it.
- A body or query that fails its model becomes the one error body (:class:`ErrorBody`): 400, error
  ``invalid``, reason ``malformed``, ``fields`` naming each bad field with a Vietnamese message.
- An id in the path outside 1..2^63-1 is 404, as an unknown id is.
- A response that breaks its model (a bug) is logged and answered 500 with the one error body.
- :func:`document` is the served OpenAPI 3.1 document: spectree's, plus what a model cannot say (security
  schemes, the snapshot's two media types, the document upload).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from copy import deepcopy
from typing import Any, TypeVar

from flask import Response as FlaskResponse
from flask import jsonify, make_response, request
from pydantic import BaseModel, ValidationError
from spectree import Response as Responses
from spectree import SpecTree
from spectree.plugins.flask_plugin import FlaskPlugin

from central.api.helpers import json_body
from central.api.schemas import MAX_ID, ErrorBody
from central.core.errors import InvalidInputError, NotFoundError
from protocols.reasons import Reason

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["Responses", "amend", "api_spec", "document", "errors", "validate", "validated_json", "validated_query"]

TITLE = "vaora central API"
DESCRIPTION = (
    "JSON API of vaora central: organisers create meetings and invitations, invited organisations register "
    "delegates (who receive their code by e-mail), gates load their snapshot. Every error body has one shape "
    "(`ErrorBody`): `error`, `reason` (a code), `message` (Vietnamese) and, for invalid input, `fields`. Staff "
    "operations accept the API token (an integration with organiser rights) or a logged-in session with the "
    "role each operation names; with a session, calls that change state also need the page's CSRF token in "
    "`X-CSRFToken`. Creating something that already exists (a user name, an organisation, a venue, a gate id) "
    "answers 409. Generated from the request and response models (spectree, pydantic)."
)

SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "apiToken": {"type": "http", "scheme": "bearer",
                 "description": "The organiser API token (VAORA_API_TOKEN or VAORA_API_TOKEN_FILE)"},
    "gateToken": {"type": "http", "scheme": "bearer",
                  "description": "The gate's own token, shown once at registration"},
    "session": {"type": "apiKey", "in": "cookie", "name": "session",
                "description": "A staff login session (POST /login). Calls that change state also need the CSRF "
                               "token of a page in the X-CSRFToken header."},
}

STAFF_SECURITY: list[dict[str, list[str]]] = [{"apiToken": []}, {"session": []}]
"""An operation for staff: the API token, or a session (plus X-CSRFToken for unsafe methods)."""


class VaoraFlaskPlugin(FlaskPlugin):
    """spectree's Flask plugin with the API's own JSON parsing, id bounds and streamed responses."""

    def request_validation(self, request: Any, query: Any, json: Any, form: Any, headers: Any,
                           cookies: Any) -> None:
        """Refuse ids out of range (404) and unparseable bodies (400 malformed), then validate."""
        for value in (request.view_args or {}).values():
            if isinstance(value, int) and not 1 <= value <= MAX_ID:
                raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy")
        if json is not None and request.method not in ("GET", "DELETE", "HEAD"):
            data = json_body()
            super().request_validation(request, query, None, form, headers, cookies)
            request.context = request.context._replace(json=self.model_adapter.validate_obj(json, data))
            return
        super().request_validation(request, query, json, form, headers, cookies)

    def validate_response(self, resp: Any, resp_model: Any, skip_validation: bool,
                          force_resp_serialize: bool) -> Any:
        """Pass a streamed response through untouched (reading it would hold it whole)."""
        if isinstance(resp, FlaskResponse) and resp.is_streamed:
            return resp, None
        response, error = super().validate_response(resp, resp_model, skip_validation, force_resp_serialize)
        if error is not None:  # a bug: the route answered what its model does not allow; say so in the one body
            log.error("response breaks its model path=%s errors=%s", request.path, error)
            response = make_response(jsonify(ErrorBody(error="internal_error", reason=Reason.INTERNAL_ERROR,
                                                        message="Lỗi hệ thống").model_dump(exclude_none=True)), 500)
        return response, error


def _one_of(ctx: Mapping[str, Any]) -> str:
    """The message :func:`central.core.validation.choice` gives, from pydantic's "'a', 'b' or 'c'"."""
    return "Phải là một trong: " + str(ctx.get("expected", "")).replace(" or ", ", ").replace("'", "")


_MESSAGES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "missing": lambda _ctx: "Không được để trống",
    "string_type": lambda _ctx: "Phải là chuỗi ký tự",
    "int_type": lambda _ctx: "Phải là số nguyên",
    "int_parsing": lambda _ctx: "Phải là số nguyên",
    "int_from_float": lambda _ctx: "Phải là số nguyên",
    "bool_parsing": lambda _ctx: "Phải là true hoặc false",
    "date_type": lambda _ctx: "Ngày không hợp lệ, dùng dạng YYYY-MM-DD",
    "date_parsing": lambda _ctx: "Ngày không hợp lệ, dùng dạng YYYY-MM-DD",
    "date_from_datetime_parsing": lambda _ctx: "Ngày không hợp lệ, dùng dạng YYYY-MM-DD",
    "date_from_datetime_inexact": lambda _ctx: "Ngày không hợp lệ, dùng dạng YYYY-MM-DD",
    "bool_type": lambda _ctx: "Phải là true hoặc false",
    "list_type": lambda _ctx: "Phải là danh sách",
    "dict_type": lambda _ctx: "Phải là một đối tượng",
    "model_type": lambda _ctx: "Phải là một đối tượng",
    "greater_than_equal": lambda ctx: f"Phải từ {ctx.get('ge')} trở lên",
    "less_than_equal": lambda ctx: f"Tối đa {ctx.get('le')}",
    "string_too_long": lambda ctx: f"Tối đa {ctx.get('max_length')} ký tự",
    "string_too_short": lambda _ctx: "Không được để trống",
    "too_short": lambda _ctx: "Không được để trống",
    "too_long": lambda ctx: f"Tối đa {ctx.get('max_length')} phần tử",
    "literal_error": lambda ctx: _one_of(ctx),
    "enum": lambda ctx: _one_of(ctx),
    "string_pattern_mismatch": lambda _ctx: "Giá trị không hợp lệ",
}


_BRANCH = re.compile(r"[\[\]]|^constrained-|^(none|nullable|str|int|bool|list|dict|datetime|date|json-or-python)$")


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Map each bad field (dotted path) of a pydantic error to one Vietnamese message."""
    fields: dict[str, str] = {}
    # a union's "should be None" only matters when no other branch said what is wrong
    for error in sorted(exc.errors(include_url=False), key=lambda e: e["type"] == "none_required"):
        # a union's branch tags (``none``, ``function-before[...]``) are not fields: name the field itself
        parts = [str(part) for part in error["loc"] if not (isinstance(part, str) and _BRANCH.search(part))]
        name = ".".join(parts) or "body"
        translate = _MESSAGES.get(error["type"])
        fields.setdefault(name, translate(error.get("ctx") or {}) if translate else error["msg"])
    return fields


def _before(_req: Any, _resp: Any, req_validation_error: Exception | None, _instance: Any,
            _adapter: Any = None) -> None:
    if isinstance(req_validation_error, ValidationError):
        raise InvalidInputError(field_errors(req_validation_error))


api_spec = SpecTree(
    "flask",
    backend=VaoraFlaskPlugin,
    mode="strict",
    title=TITLE,
    description=DESCRIPTION,
    version="1.0.0",
    openapi_version="3.1.0",
    path="apidoc",
    page_templates={},
    annotations=False,
    before=_before,
    validation_error_status=400,
    validation_error_model=ErrorBody,
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
)


def errors(*codes: int) -> dict[str, Any]:
    """``Response`` keyword arguments documenting :class:`ErrorBody` for each status code."""
    return {f"HTTP_{code}": ErrorBody for code in codes}


def validate(*, resp: Responses, json: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
             headers: type[BaseModel] | None = None, form: type[BaseModel] | None = None,
             security: Any = None, skip_validation: bool = False, tags: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Validate and document a route (``security`` defaults to :data:`STAFF_SECURITY`)."""
    return api_spec.validate(
        json=json, query=query, headers=headers, form=form, resp=resp, tags=tags,
        security=STAFF_SECURITY if security is None else security, skip_validation=skip_validation,
    )


def validated_json() -> dict[str, Any]:
    """The request body as validated by the route's model: only the fields the caller sent, JSON-typed."""
    model = request.context.json  # type: ignore[attr-defined]
    return model.model_dump(mode="json", exclude_unset=True) if model is not None else {}


def validated_query() -> Any:
    """The query as validated by the route's model."""
    return request.context.query  # type: ignore[attr-defined]


_AMENDMENTS: dict[tuple[str, str], dict[str, Any]] = {}


def amend(path: str, method: str, **fields: Any) -> None:
    """Add to the generated operation what its models cannot say (e.g. a second media type)."""
    _AMENDMENTS[(path, method)] = fields


def _allows_null(schema: Mapping[str, Any]) -> bool:
    kinds = schema.get("type")
    return kinds == "null" or (isinstance(kinds, list) and "null" in kinds) or any(
        _allows_null(branch) for branch in schema.get("anyOf", []) + schema.get("oneOf", []))


def _drop_impossible_defaults(node: Any) -> None:
    """A field that may be left out but not sent as null (``SkipJsonSchema[None]``) has no default in the
    document: pydantic would write ``default: null``, which its own schema refuses."""
    if isinstance(node, dict):
        if "default" in node and node["default"] is None and not _allows_null(node):
            del node["default"]
        for value in node.values():
            _drop_impossible_defaults(value)
    elif isinstance(node, list):
        for value in node:
            _drop_impossible_defaults(value)


def document() -> dict[str, Any]:
    """The OpenAPI document of the API, generated from the routes' models."""
    doc = deepcopy(api_spec.spec)
    _drop_impossible_defaults(doc)
    doc.pop("tags", None)
    doc["components"]["securitySchemes"] = deepcopy(SECURITY_SCHEMES)
    doc["security"] = STAFF_SECURITY
    for path, item in doc["paths"].items():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("schema", {}).get("type") == "integer":
                    parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
            if path.endswith("/openapi.json"):
                operation["security"] = []
            if "requestBody" in operation:
                operation["responses"].setdefault("409", {
                    "description": "A request creating the same thing at the same moment won (a unique key)",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
                operation["responses"].setdefault("413", {
                    "description": "The body is larger than the app accepts",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
            if any(p.get("in") == "path" and p["schema"].get("type") == "integer"
                   for p in operation.get("parameters", [])):
                operation["responses"].setdefault("405", {
                    "description": "An id beyond the database's integers matches no route: 404, or 405 when the "
                                   "path serves another method",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
            operation["responses"].setdefault("503", {
                "description": "The database stayed locked past its busy timeout (a heavily loaded server): "
                               "retry after Retry-After seconds",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
            operation["responses"].setdefault("414", {
                "description": "The request line is too long (answered by the HTTP server, before the app)"})
    for (path, method), fields in _AMENDMENTS.items():
        operation = doc["paths"][path][method]
        for key, value in fields.items():
            if key == "responses":
                for code, response in value.items():
                    operation["responses"].setdefault(code, {}).update(deepcopy(response))
            else:
                operation[key] = deepcopy(value)
    return doc
