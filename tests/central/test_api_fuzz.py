"""Property-based fuzzing of the served JSON API: schemathesis generates requests from the OpenAPI document that
central serves, for every operation, valid and invalid, once with the API token and once with a logged-in
administrator's session (and its CSRF token); no answer may be a server error or break the document.

The central is the real one (``vaora-central serve``, gunicorn) on a migrated SQLite database, seeded through the
API with a venue, a meeting, organisations, invitations, a gate and users so that generated ids hit real rows.
The run is bounded (a few examples per operation and mode) and deterministic (derandomized).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis

# pytest assertion-rewrites schemathesis (an installed pytest plugin) at first import: done here, at collection,
# not mid-run where CPython 3.11's shared AST state can race a thread formatting a traceback.
import schemathesis.specs.openapi.schemas
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.central.staff import csrf
from tests.central.test_server import TOKEN, log_in, serving

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CHECKS: list[Callable[..., Any]] = [
    not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
]
MAX_EXAMPLES = 20
"""Examples per operation and generation mode: ~31 operations x 2 modes x 2 identities stay within minutes."""


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A served, seeded central: its base URL and environment."""
    with serving(tmp_path_factory.mktemp("fuzz")) as (base, _server, env, log):
        _seed(base)
        env["FUZZ_SERVER_LOG"] = str(log)
        yield base, env


def _seed(base: str) -> None:
    token = {"Authorization": f"Bearer {TOKEN}"}
    admin = log_in(base)
    admin_headers = {"X-CSRFToken": _csrf_token(admin, base)}

    def post(who: requests.Session | None, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if who is None:
            answer = requests.post(f"{base}/api/v1{path}", json=body, headers=token, timeout=30)
        else:
            answer = who.post(f"{base}/api/v1{path}", json=body, headers=admin_headers, timeout=30)
        assert answer.status_code == 201, (path, answer.status_code, answer.text[:300])
        return answer.json()

    hall = post(admin, "/venues", {"name": "Hội trường A", "kind": "main", "site_id": "hq"})
    post(admin, "/venues", {"name": "Điểm cầu Phú Yên", "kind": "remote"})
    meeting = post(None, "/meetings", {"title": "Họp giao ban", "starts_at": "2030-03-01T08:00:00+07:00",
                                       "ends_at": "2030-03-01T11:00:00+07:00", "main_venue_id": hall["id"]})
    orgs = [post(None, "/organisations", {"name": f"Sở số {n}", "email": f"so{n}@example.vn"})["id"]
            for n in range(1, 4)]
    post(None, "/invitations", {"meeting_id": meeting["id"], "organisation_id": orgs[0]})
    post(None, "/invitations/drafts", {"meeting_id": meeting["id"], "organisation_ids": orgs[1:]})
    post(admin, "/gates", {"gate_id": "gate-1", "site_id": "hq"})
    post(admin, "/users", {"username": "chuyenvien", "password": "mat-khau-rat-dai-123", "role": "organiser"})


def _csrf_token(session: requests.Session, base: str) -> str:
    return csrf(session.get(f"{base}/meetings/", timeout=10).text)


def _fuzz(base: str, session: requests.Session, headers: dict[str, str]) -> list[str]:
    """Run every operation of the served document in both generation modes; return the failures found."""
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json", timeout=30)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    # The users' operations last: a change to the caller's own account (a new password, a lost role) may end
    # the session, which would leave every later operation answering 401.
    operations.sort(key=lambda operation: operation.path.startswith("/api/v1/users"))
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _examples(operation, mode, lambda case: _call(case, base, session, headers, failures))()
            except Unsatisfiable:  # nothing to make invalid in this operation
                continue
    return failures


def _examples(operation: Any, mode: GenerationMode, check: Callable[[Any], None]) -> Callable[[], None]:
    """A bounded, derandomized Hypothesis test that feeds ``check`` the operation's generated cases."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        check(case)

    return run  # type: ignore[no-any-return]


STATUSES: dict[str, dict[str, set[int]]] = {}
"""Per identity, the status codes each operation answered (to show the fuzzer got past authentication)."""


def _call(case: Any, base: str, session: requests.Session, headers: dict[str, str], failures: list[str]) -> None:
    try:
        response = case.call(base_url=base, session=session, headers=headers, timeout=30)
        seen = STATUSES.setdefault("session" if "X-CSRFToken" in headers else "token", {})
        seen.setdefault(case.operation.label, set()).add(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)
    except (Exception, BaseExceptionGroup) as exc:  # checks failed (a FailureGroup) or the call broke
        found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
        for failure in found:
            title = getattr(failure, "title", type(failure).__name__)
            key = f"{case.operation.label}: {title}"
            if not any(seen.startswith(key) for seen in failures):
                failures.append(f"{key}\n{str(failure).strip()[:500]}\n{str(exc).strip()[-700:]}")


def _assert_authenticated(identity: str) -> None:
    """The run got past authentication: most operations answered a success at least once."""
    succeeded = sorted(op for op, codes in STATUSES[identity].items() if any(200 <= c < 300 for c in codes))
    assert "GET /api/v1/me" in succeeded and len(succeeded) >= 12, succeeded


def _active_administrator_exists(env: dict[str, str]) -> bool:
    from central.auth.models import User
    from central.auth.roles import ADMINISTRATOR
    from central.core.db import database, open_database

    open_database(env["VAORA_DATABASE_URL"])
    with database.connection_context():
        return User.select().where((User.role == ADMINISTRATOR) & User.active).exists()


def _server_errors(env: dict[str, str]) -> str:
    """The server's own account of what went wrong: its log's error lines and tracebacks (the last 80 lines)."""
    lines = Path(env["FUZZ_SERVER_LOG"]).read_text(encoding="utf-8", errors="replace").splitlines()
    wanted = [line for line in lines
              if "ERROR" in line or "WARNING" in line or line.startswith(("Traceback", "  ", "E"))]
    return "\n\nserver log:\n" + "\n".join(wanted[-80:])


def test_the_api_token_finds_no_server_error_and_no_schema_violation(
    central: tuple[str, dict[str, str]],
) -> None:
    base, _env = central
    failures = _fuzz(base, requests.Session(), {"Authorization": f"Bearer {TOKEN}"})
    _assert_authenticated("token")
    if failures:
        pytest.fail(f"{len(failures)} failures:\n\n" + "\n\n".join(failures) + _server_errors(_env), pytrace=False)


def test_an_administrators_session_finds_no_server_error_and_no_schema_violation_and_an_admin_remains(
    central: tuple[str, dict[str, str]],
) -> None:
    base, env = central
    session = log_in(base)
    failures = _fuzz(base, session, {"X-CSRFToken": _csrf_token(session, base)})
    _assert_authenticated("session")
    if failures:
        pytest.fail(f"{len(failures)} failures:\n\n" + "\n\n".join(failures) + _server_errors(env), pytrace=False)
    # The fuzzer may change any user, but never so that nobody can administer central any more.
    assert _active_administrator_exists(env)


