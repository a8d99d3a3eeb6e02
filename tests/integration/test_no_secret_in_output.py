"""No secret in any output: the real `orders` processes, run with real secrets (a Redis that wants its
password, a SASL password, an API key sent in a query string and in `Authorization`), at DEBUG; every line
they write to stdout or stderr is searched for each secret.

The one exception is by design: `orders client create` prints the API key it issues, once, on stdout.
"""

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.devstack import Endpoints, free_port, redis_server_binary, spawn, stop_process, wait_for_port
from testkit.commands import run_orders
from testkit.isolation import isolated_names
from tests.waiting import eventually

REDIS_PASSWORD = f"redis-pw-{uuid.uuid4().hex}"
WRONG_REDIS_PASSWORD = f"wrong-pw-{uuid.uuid4().hex}"
SASL_PASSWORD = f"sasl-pw-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def locked_redis_port() -> Iterator[int]:
    """A redis-server of its own that refuses every client without `REDIS_PASSWORD`."""
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        args = [
            redis_server_binary(),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", workdir,
            "--save", "",
            "--appendonly", "no",
            "--requirepass", REDIS_PASSWORD,
        ]  # fmt: skip
        process = spawn(args)
        try:
            wait_for_port(port, process, "redis-server")
            yield port
        finally:
            stop_process(process)


@pytest.fixture
def environment(stack: Endpoints, locked_redis_port: int) -> dict[str, str]:
    """What every process gets: the stack's Kafka, the locked Redis by its password, names of its own."""
    names = isolated_names(f"s{uuid.uuid4().hex[:8]}")
    return {
        "PATH": os.environ["PATH"],
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:{locked_redis_port}/0",
        "ORDERS_LOG_LEVEL": "DEBUG",
        **{f"ORDERS_{name.upper()}": value for name, value in names.items()},
    }


def orders(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_orders(*args, environment=environment)


def assert_no_secret(output: str, secrets: list[str]) -> None:
    """No line of `output` holds any of `secrets`, nor the password part of the Redis URL."""
    for number, line in enumerate(output.splitlines(), 1):
        for secret in secrets:
            assert secret not in line, f"line {number} holds a secret: {line}"


async def test_the_api_logs_requests_without_the_keys_they_carry(
    environment: dict[str, str], tmp_path: Path
) -> None:
    """`orders api` on the locked Redis: requests with the API key in the query string and in the header
    are logged by method, path and status only, and nothing it writes holds the key or the Redis password."""
    issued = orders(environment, "client", "create", "--client", "acme-air")
    assert issued.returncode == 0, issued.stderr
    api_key = issued.stdout.split('"api_key": "')[1].split('"')[0]
    port = free_port()
    log = tmp_path / "api.log"
    api = spawn(
        [sys.executable, "-m", "service.cli", "api"],
        env={**environment, "ORDERS_API_PORT": str(port)},
        log_path=log,
    )
    try:
        wait_for_port(port, api, "orders api")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            refused = await client.get("/v1/orders", params={"api_key": api_key})
            listed = await client.get("/v1/orders", headers={"Authorization": f"Bearer {api_key}"})
            missing = await client.get(
                "/v1/orders/ORD-NONE",
                params={"api_key": api_key, "token": REDIS_PASSWORD},
                headers={"Authorization": f"Bearer {api_key}"},
            )
            ready = await client.get("/readyz")
        assert [r.status_code for r in (refused, listed, missing, ready)] == [401, 200, 404, 200]
        await eventually(lambda: log.read_text().count('"event": "http.request"') >= 4)
    finally:
        stop_process(api)

    written = log.read_text()
    assert_no_secret(issued.stderr + written, [api_key, REDIS_PASSWORD])
    access = [line for line in written.splitlines() if '"http.request"' in line]
    assert '"path": "/v1/orders", "status": 401' in access[0]
    assert '"path": "/v1/orders", "status": 200' in access[1]
    assert '"path": "/v1/orders/ORD-NONE", "status": 404' in access[2]


async def test_the_service_logs_nothing_of_its_redis_password(
    environment: dict[str, str], tmp_path: Path
) -> None:
    """`orders service` at DEBUG, from start to a drained stop: not a line with the Redis password."""
    log = tmp_path / "service.log"
    service = spawn([sys.executable, "-m", "service.cli", "service"], env=environment, log_path=log)
    try:
        await eventually(lambda: "service.starting" in log.read_text(), timeout=60)
    finally:
        assert stop_process(service) == 0
    assert_no_secret(log.read_text(), [REDIS_PASSWORD])


def test_errors_never_show_a_password(environment: dict[str, str]) -> None:
    """A wrong Redis password, a SASL setup that is incomplete or beside a wrong setting: one line each,
    naming what is wrong, holding none of the passwords."""
    wrong_url = environment["REDIS_URL"].replace(REDIS_PASSWORD, WRONG_REDIS_PASSWORD)
    sasl = {"ORDERS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "ORDERS_KAFKA_SASL_PASSWORD": SASL_PASSWORD}
    runs = {
        "wrong Redis password": (
            {**environment, "REDIS_URL": wrong_url},
            ["entitlements", "show", "--client", "acme-air", "--credential", "CARD-1"],
            "orders: Redis: ",
        ),
        "SASL without a username": (
            {**environment, **sasl},
            ["service"],
            "orders: invalid settings: SASL_SSL needs kafka_sasl_username",
        ),
        "SASL beside a wrong setting": (
            {**environment, **sasl, "ORDERS_KAFKA_SASL_USERNAME": "svc", "ORDERS_API_PORT": "http"},
            ["api"],
            "orders: invalid settings: ORDERS_API_PORT: Input should be a valid integer",
        ),
    }
    for what, (env, args, says) in runs.items():
        done = orders(env, *args)
        assert done.returncode != 0, what
        assert done.stderr.count("\n") == 1 and says in done.stderr, (what, done.stderr)
        assert_no_secret(done.stdout + done.stderr, [REDIS_PASSWORD, WRONG_REDIS_PASSWORD, SASL_PASSWORD])
