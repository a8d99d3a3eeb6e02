"""Every `orders` command reports bad input, wrong settings and Kafka or Redis out of reach in one line on
stderr, exits non-zero, and shows no traceback (the commands run as processes, against closed ports)."""

import os
import subprocess

import pytest
from pydantic import BaseModel, HttpUrl, TypeAdapter, ValidationError

from service.cli import edge_error
from testkit.commands import run_orders

UNREACHABLE_REDIS = "redis://:not-a-real-password@127.0.0.1:1/0"
"""Port 1 refuses at once: Redis "unreachable" without waiting for a timeout."""


def orders(*args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """`orders <args>` with only `environment` set (no stack's URLs inherited), Redis out of reach."""
    return run_orders(
        *args,
        environment={"PATH": os.environ["PATH"], "ORDERS_REDIS_URL": UNREACHABLE_REDIS, **environment},
    )


def assert_one_line(done: subprocess.CompletedProcess[str], returncode: int, says: str) -> None:
    """The process exited `returncode` with exactly one line on stderr, which contains `says`."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert says in done.stderr, done.stderr
    assert done.returncode == returncode, done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "orders: the following arguments are required: command"),
        (("entitlements", "grant", "--client", "a", "--credential", "b", "--units", "x"), "invalid int"),
        (("entitlements", "show", "--client", "a/b", "--credential", "c"), "is not a client identifier"),
        (("entitlements", "show", "--client", "a"), "required: --credential"),
        (("anomalies", "--count", "0"), "orders anomalies: argument --count: '0' is not a whole number"),
        (("client", "revoke", "--key-id", "{x}"), "is not a key id"),
        (("client", "create", "--client", "acme:eu"), "invalid client id"),
        (("demo", "--orders", "-3"), "orders demo: argument --orders"),
        (("no-such-command",), "invalid choice: 'no-such-command'"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(args: tuple[str, ...], says: str) -> None:
    """Argument errors name the command and the argument, without argparse's usage lines."""
    assert_one_line(orders(*args), 2, says)


@pytest.mark.parametrize(
    "args",
    [
        ("entitlements", "grant", "--client", "acme", "--credential", "CARD-1", "--units", "3"),
        ("entitlements", "show", "--client", "acme", "--credential", "CARD-1"),
        ("client", "create", "--client", "acme"),
        ("client", "revoke", "--key-id", "0123456789abcdef"),
        ("anomalies",),
        ("webhooks", "list", "--client", "acme"),
    ],
)
def test_redis_out_of_reach_is_one_line_and_exit_1(args: tuple[str, ...]) -> None:
    """The admin commands say that Redis did not answer, and where (never its password)."""
    done = orders(*args)
    assert_one_line(done, 1, "orders: Redis: Error 111 connecting to 127.0.0.1:1")
    assert "not-a-real-password" not in done.stderr


@pytest.mark.parametrize("process", ["service", "api"])
def test_kafka_out_of_reach_ends_a_process_with_one_line(process: str) -> None:
    """`orders service` and `orders api` log their JSON lines, then end with one plain line naming Kafka,
    no traceback."""
    done = orders(process, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("orders: Kafka: KafkaConnectionError"), done.stderr


@pytest.mark.parametrize(
    ("args", "environment", "says"),
    [
        (("healthcheck",), {"ORDERS_API_PORT": "99999"}, "ORDERS_API_PORT: Input should be less than"),
        (("anomalies",), {"REDIS_URL": "localhost:6379"}, "REDIS_URL: must start with redis://"),
        (
            ("entitlements", "show", "--client", "a", "--credential", "b"),
            {"ORDERS_CANCELLATION_WINDOWS": "{not json"},
            'error parsing value for field "cancellation_windows"',
        ),
        (
            ("client", "create", "--client", "acme"),
            {"ORDERS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "SASL_SSL needs kafka_sasl_username and kafka_sasl_password",
        ),
        (
            ("webhooks", "list", "--client", "acme"),
            {"ORDERS_RELAY_ALLOWED_NETWORKS": '["10.0.0.1/8"]', "ORDERS_MAX_BATCH": "0"},
            "ORDERS_MAX_BATCH: Input should be greater than 0; ORDERS_RELAY_ALLOWED_NETWORKS[0]: not a",
        ),
    ],
)
def test_wrong_settings_are_one_line_naming_the_variables_and_exit_2(
    args: tuple[str, ...], environment: dict[str, str], says: str
) -> None:
    """Each wrong variable by name, with what is wrong with it."""
    assert_one_line(orders(*args, **environment), 2, f"orders: invalid settings: {says}")


def test_an_unhealthy_process_is_one_line_and_exit_1() -> None:
    """`orders healthcheck` with nothing listening names what it asked."""
    assert_one_line(orders("healthcheck", ORDERS_API_PORT="1"), 1, "unhealthy: http://127.0.0.1:1/healthz")


class _Endpoint(BaseModel):
    url: HttpUrl


def test_other_validation_errors_are_one_line_without_the_input() -> None:
    """An input a command validates itself is reported by location and reason, never by its value."""
    with pytest.raises(ValidationError) as by_model:
        _Endpoint(url="no-url-secret-1")
    with pytest.raises(ValidationError) as by_adapter:
        TypeAdapter(HttpUrl).validate_python("no-url-secret-2")

    assert (
        edge_error(by_model.value)
        == "invalid input: url: Input should be a valid URL, relative URL without a base"
    )
    assert (
        edge_error(by_adapter.value)
        == "invalid input: Input should be a valid URL, relative URL without a base"
    )
