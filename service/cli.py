"""The `orders` command: every process of the project, each configured from the environment."""

import argparse
import asyncio
import gc
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from aiokafka.errors import KafkaError
from pydantic import ValidationError
from pydantic_settings import SettingsError
from redis.exceptions import RedisClusterException, RedisError

from service.admin import add_admin_commands, positive_int
from service.config import settings_problems
from service.logs import configure_logging
from service.portal_admin import add_portal_commands
from service.relay.admin import add_webhook_commands

if TYPE_CHECKING:
    from service.config import ApiSettings, Settings


def edge_error(error: Exception) -> str | None:
    """What a command tells its user in one line, for the errors that come of its input or its environment
    (settings, arguments, Kafka or Redis away); None for any other error, which is a bug.

    Never a setting's value: a validation error is described by variable names and reasons only.
    """
    if isinstance(error, ValidationError) and error.title.endswith("Settings"):
        return f"invalid settings: {settings_problems(error)}"
    if isinstance(error, ValidationError):
        details = error.errors(include_url=False, include_input=False, include_context=False)
        return "invalid input: " + "; ".join(_located(d["loc"], d["msg"]) for d in details)
    if isinstance(error, SettingsError):
        return f"invalid settings: {error}"
    if isinstance(error, RedisError | RedisClusterException):
        return f"Redis: {error or type(error).__name__}"
    if isinstance(error, KafkaError):
        return f"Kafka: {error or type(error).__name__}"
    if isinstance(error, OSError):
        return str(error) or type(error).__name__
    return None


def _located(location: tuple[str | int, ...], message: str) -> str:
    """`field.0: message`, or the message alone where pydantic names no field (a validator's own name)."""
    path = ".".join(map(str, location))
    return f"{path}: {message}" if path and "[" not in path else message


def _serve_metrics(port: int) -> None:
    """Prometheus' own exporter thread, when a port is configured."""
    if port:
        from prometheus_client import start_http_server  # noqa: PLC0415

        start_http_server(port)


def _healthcheck(_: argparse.Namespace) -> int:
    """The container's health check: exit 0 if this container's process answers on loopback, at the API's
    `/healthz` (`orders api`) or on the metrics port (`orders service` and `orders relay`: set
    `ORDERS_METRICS_PORT`)."""
    import urllib.request  # noqa: PLC0415

    from service.config import load_settings  # noqa: PLC0415

    settings = load_settings()
    urls = [f"http://127.0.0.1:{settings.api_port}/healthz"]
    if settings.metrics_port:
        urls.append(f"http://127.0.0.1:{settings.metrics_port}/metrics")
    failures = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                if response.status == 200:
                    return 0
                failures.append(f"{url}: HTTP {response.status}")
        except OSError as error:
            failures.append(f"{url}: {error}")
    print("unhealthy: " + "; ".join(failures), file=sys.stderr)
    return 1


class _Process(Protocol):
    """What `_run_consumer` runs: a FastStream app, or the simulator's own loop."""

    def run(self) -> Coroutine[Any, Any, None]: ...


def _run_consumer(
    settings: "Settings", build: Callable[[], _Process], *, name: str, serve_metrics: bool = True
) -> int:
    """Run a consuming process until SIGTERM or SIGINT; it drains its in-flight batches before exiting
    (FastStream's apps, and the simulator's own loop). `name` is its default OpenTelemetry `service.name`."""
    from service import tracing  # noqa: PLC0415
    from service.runtime import run  # noqa: PLC0415

    configure_logging(settings.log_level)
    tracing.configure(name)
    if serve_metrics:
        _serve_metrics(settings.metrics_port)
    app = build()
    _settle_heap()
    run(app.run())
    return 0


GC_GENERATION_0_THRESHOLD = 100_000
"""Net allocations of tracked objects (allocated minus freed) between young collections; CPython's default is
700. A batch of 500 inputs keeps tens of thousands of objects alive while it runs (records, orders, events,
replies), and a young collection in the middle of it walks all of them and moves them to the next
generation, whose collections walk them again: at 10,000, young and middle collections took about 15 % of
the order service's CPU at saturation (measured with `gc.callbacks`), at 100,000 next to nothing. Freed
objects do not count, so collections stay rare; garbage in reference cycles waits for one a little longer
(at most 100,000 objects, a few tens of MB at worst)."""


def _settle_heap() -> None:
    """Move everything built so far (modules, pydantic schemas, clients) out of the collector's sight.

    Those objects live as long as the process, yet every full collection walked all of them again: about
    a fifth of the order service's CPU per order went to the garbage collector (measured with `gc.callbacks`
    on the processor's batch loop). Frozen, they are never collected (there is nothing to collect).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_GENERATION_0_THRESHOLD, older, oldest)


def _run_service(_: argparse.Namespace) -> int:
    from service.app import build_service  # noqa: PLC0415 - keep `orders --help` fast
    from service.config import load_settings  # noqa: PLC0415

    settings = load_settings()
    return _run_consumer(settings, lambda: build_service(settings).app, name="orders-service")


def _run_resource_sim(_: argparse.Namespace) -> int:
    from service.config import ResourceSimSettings  # noqa: PLC0415
    from service.resource_sim import build_resource_sim  # noqa: PLC0415

    settings = ResourceSimSettings()
    return _run_consumer(
        settings, lambda: build_resource_sim(settings), name="orders-resource-sim", serve_metrics=False
    )


def _run_relay(_: argparse.Namespace) -> int:
    from service.config import RelaySettings  # noqa: PLC0415
    from service.relay.app import build_relay  # noqa: PLC0415

    settings = RelaySettings()
    return _run_consumer(settings, lambda: build_relay(settings).app, name="orders-relay")


def _run_api(_: argparse.Namespace) -> int:
    from service import tracing  # noqa: PLC0415
    from service.api.app import build_api  # noqa: PLC0415
    from service.api.server import serve  # noqa: PLC0415
    from service.config import ApiSettings  # noqa: PLC0415

    settings = ApiSettings()
    configure_logging(settings.log_level)
    tracing.configure("orders-api")
    asyncio.run(_reach_kafka_and_redis(settings))
    serve(build_api(settings), settings.api_host, settings.api_port)
    return 0


async def _reach_kafka_and_redis(settings: "ApiSettings") -> None:
    """Connect once before serving, so that an API that cannot start says why in one line: uvicorn would
    report the same failure in its startup with a traceback."""
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415

    from service.kafka import client_options  # noqa: PLC0415
    from service.store.client import connect_with  # noqa: PLC0415

    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **client_options(settings)
    )
    try:
        await admin.start()
    finally:
        await admin.close()
    async with connect_with(settings) as redis:
        await redis.ping()


def _run_dev(_: argparse.Namespace) -> int:
    from service.demo import run_dev  # noqa: PLC0415

    configure_logging()
    return run_dev()


def _run_demo(args: argparse.Namespace) -> int:
    from service.demo import run_demo  # noqa: PLC0415

    configure_logging("WARNING")
    return run_demo(orders=args.orders)


def _export_contracts(_: argparse.Namespace) -> int:
    from contracts.export import write_json_schemas  # noqa: PLC0415
    from service.app import build_service  # noqa: PLC0415
    from service.asyncapi import document_settings, write_asyncapi, write_openapi  # noqa: PLC0415

    broker = build_service(document_settings()).broker
    for path in [*write_json_schemas(), write_asyncapi(broker), write_openapi()]:
        print(f"wrote {path}")
    return 0


class _OneLineParser(argparse.ArgumentParser):
    """Reports a bad argument in one line on stderr (argparse adds the usage on lines of its own); every
    subcommand's parser is of this class too, as argparse makes them of their parent's."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `orders`."""
    parser: argparse.ArgumentParser = _OneLineParser(prog="orders", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("service", help="run the order service (command and reply consumers)").set_defaults(
        run=_run_service
    )
    commands.add_parser("resource-sim", help="run the resource operator simulator").set_defaults(
        run=_run_resource_sim
    )
    commands.add_parser("relay", help="run the webhook relay").set_defaults(run=_run_relay)
    commands.add_parser(
        "healthcheck", help="exit 0 if the process in this container answers (the image's HEALTHCHECK)"
    ).set_defaults(run=_healthcheck)
    commands.add_parser("api", help="run the HTTP API (Order Details, health, metrics)").set_defaults(
        run=_run_api
    )
    commands.add_parser(
        "dev", help="run the embedded Kafka and Redis, the service and the simulator until interrupted"
    ).set_defaults(run=_run_dev)
    demo = commands.add_parser("demo", help="run the dev stack, send prebookings, print their status changes")
    demo.add_argument("--orders", type=positive_int, default=6, help="how many prebookings to send")
    demo.set_defaults(run=_run_demo)
    contracts = commands.add_parser("contracts", help="contract files")
    contracts_commands = contracts.add_subparsers(dest="contracts_command", required=True)
    contracts_commands.add_parser(
        "export", help="write contracts/schemas/*.json, contracts/asyncapi.json and contracts/openapi.json"
    ).set_defaults(run=_export_contracts)
    add_admin_commands(commands)
    add_webhook_commands(commands)
    add_portal_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `orders` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        problem = edge_error(error)
        if problem is None:
            raise  # a bug: its traceback is what it takes to fix it
        print(f"orders: {problem}", file=sys.stderr)
        return 2 if isinstance(error, ValueError) else 1


if __name__ == "__main__":
    sys.exit(main())
