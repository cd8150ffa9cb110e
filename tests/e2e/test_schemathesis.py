"""API contract fuzzing: schemathesis against the running embedded platform's /openapi.json.

Every operation gets generated valid and invalid requests (a fixed seed, a bounded number of
examples) sent over real HTTP with the demo client's token; each answer must not be a 5xx,
must use a documented status code and content type, and its body must match the schema.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import Running

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
MAX_EXAMPLES = 25
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


async def _token(url: str, creds: dict[str, str]) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        r = await http.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": creds["client_id"],
                "client_secret": creds["client_secret"],
            },
        )
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def _fuzz_operation(
    operation: Any, mode: schemathesis.GenerationMode, url: str, token: str
) -> str | None:
    """Run one operation's examples; the failure report, or None when every answer conforms."""
    session = requests.Session()

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,  # the same examples on every run: reproducible in CI
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report the first failure fast
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        if case.method.upper() == "POST":
            headers["Idempotency-Key"] = str(uuid.uuid4())
        case.call_and_validate(
            base_url=url, session=session, headers=headers, checks=CHECKS, timeout=30
        )

    try:
        run()
    except Unsatisfiable:
        # Negative mode only: an operation whose every input is a free-form string (e.g. the
        # path id of GET /v1/payments/{payment_id}) or that has no input at all (JWKS) has no
        # invalid request to generate; that is nothing to check, not a contract failure.
        if mode is not schemathesis.GenerationMode.NEGATIVE:
            raise
    except (Exception, FailureGroup) as exc:  # collected, reported together below
        return f"{operation.label} [{mode.value}]: {exc}"
    finally:
        session.close()
    return None


def _fuzz(url: str, token: str) -> list[str]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=30)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the schema lists no operations"
    for operation in operations:
        for mode in MODES:
            failure = _fuzz_operation(operation, mode, url, token)
            if failure:
                failures.append(failure)
    return failures


async def test_every_operation_honours_its_documented_contract_under_fuzzing(
    embedded: Running,
) -> None:
    token = await _token(embedded.url, embedded.creds)
    # schemathesis speaks blocking HTTP; the platform serves on this loop, so fuzz in a thread.
    failures = await asyncio.to_thread(_fuzz, embedded.url, token)
    assert not failures, "\n\n".join(failures)
