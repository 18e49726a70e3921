"""Schemathesis fuzzing of the OpenAPI document against real API processes.

Every generated request, valid or deliberately invalid, must get an answer below 500 (the
one documented exception is 503: the broker is unreachable), and every error answer must
have the ARM shape. Half the resource requests are steered to the test's real providers, so
the fuzzer reaches the providers and the worker fleet, not only the 404 for unknown ones.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode

from tests.integration.api.apiprocess import ApiProcess
from tests.integration.api.conftest import ADMIN_TOKEN, ApiFactory, WorkerFactory

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 25
DOCUMENTED_5XX = {503}


def check(case: Case, response: Any) -> None:
    where = f"{case.method} {case.formatted_path} {case.query} -> {response.status_code}"
    assert response.status_code < 500 or response.status_code in DOCUMENTED_5XX, (
        where,
        response.text[:500],
    )
    if response.status_code >= 400 and case.path != "/metrics":
        error = response.json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str), where


def fuzz(api: ApiProcess, namespace: str | None) -> int:
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode), steer=st.booleans())
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def run(case: Case, steer: bool) -> None:
                nonlocal calls
                params = case.path_parameters or {}
                if namespace and steer and "provider_namespace" in params:
                    params["provider_namespace"] = namespace
                    params["resource_type"] = random.choice(["Job", "ResourceGroup"])
                headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if steer else {}
                response = case.call(base_url=api.url, headers=headers, timeout=30)
                calls += 1
                check(case, response)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing invalid to send (e.g. /livez)
    return calls


def test_fuzz_the_offloading_api(
    api_process: ApiFactory,
    worker_process: WorkerFactory,
    offloading_env: dict[str, str],
    namespace: str,
) -> None:
    worker_process("pod-fuzz").start()
    api = api_process("api-fuzz", offloading_env, JOB_TIMEOUT="10").start(wait_for="/health")
    assert fuzz(api, namespace) > 100


def test_fuzz_the_in_process_api(
    api_process: ApiFactory, provider_env: dict[str, str], namespace: str
) -> None:
    env = {**provider_env, "OFFLOADING_ENABLED": "false", "ADMIN_TOKEN": ADMIN_TOKEN}
    api = api_process("api-fuzz-local", env, JOB_TIMEOUT="10").start(wait_for="/health")
    assert fuzz(api, namespace) > 100
