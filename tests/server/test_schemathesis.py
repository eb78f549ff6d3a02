"""Property-based tests against our own OpenAPI document (schemathesis), on SQLite and
PostgreSQL: no operation answers 5xx, and every answer matches the schema (status codes,
content types, bodies). Bounded examples per operation, so the whole walk takes about a minute."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from api_helpers import echo_function
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from live import Live, live_server
from platform_db import BACKENDS, database
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from voicefn.server import EgressDefaults, ServerConfig

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    from servers import running_server

    tmp = tmp_path_factory.mktemp("schemathesis")
    with (
        running_server() as functions,
        database(request.param, tmp) as url,
        live_server(
            ServerConfig(
                data_dir=tmp / "data",
                database_url=url,
                egress=EgressDefaults(allow_private_network=True),
            )
        ) as live,
        live.client() as api,
    ):
        # The OpenAPI examples name agent_abc123 and get_order_status: let them exist.
        api.put("/v1/agents/agent_abc123", json={"name": "seeded", "system_prompt": "hi"})
        api.post(
            "/v1/agents/agent_abc123/functions",
            json=echo_function(functions.url, "get_order_status"),
        )
        yield live


#: schemathesis 4.32's own pytest wrapper reads a pytest-internal attribute that pytest 9
#: removed, so each operation's Hypothesis test is built here from ``as_strategy``.
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


def _operations(live: Live) -> list[Any]:
    loaded = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    return [result.ok() for result in loaded.get_all_operations()]


def not_seen_by_the_app(response: Any) -> bool:
    """A request uvicorn's HTTP parser refused (a generated header value that is not valid
    HTTP, e.g. a bad Transfer-Encoding) gets its plain-text 400 before the application runs:
    no answer of ours to check. Every response of the application carries X-Request-Id."""
    return response.status_code == 400 and "x-request-id" not in response.headers


def test_no_5xx_and_every_answer_matches_the_schema(served: Live) -> None:
    operations = _operations(served)
    assert len(operations) > 20
    headers = {"Authorization": f"Bearer {served.key}"}
    failures: list[str] = []
    for operation in operations:
        for mode in MODES:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=12,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
                phases=[Phase.explicit, Phase.generate],
            )
            def run(case: Any) -> None:
                response = case.call(base_url=served.url, headers=headers, timeout=60)
                if not_seen_by_the_app(response):
                    return
                case.validate_response(response, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to break
            except Exception as exc:  # collect every operation's failure, then report them all
                failures.append(f"{operation.label} ({mode}): {exc}")
    assert not failures, "\n\n".join(failures)
