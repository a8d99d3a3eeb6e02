"""A running order service and resource simulator on the real broker and Redis, shared by the module."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import cast

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from service.api.app import build_api
from service.app import OrderService, build_service
from service.config import ApiSettings, ResourceSimSettings, Settings, TopicLayout
from service.devstack import EmbeddedRedisCluster, Endpoints, free_port
from service.kafka import ensure_client_topics, ensure_topics, service_topics
from service.resource_sim import build_resource_sim
from service.store.client import connect
from testkit.isolation import isolated_names
from testkit.kafka_tap import TopicTap
from tests.integration.observe import FLOW_CLIENTS, event_topics
from tests.waiting import eventually

FULL_RESOURCE = "RES-FULL"
"""The simulator refuses every reservation at this resource."""
SILENT_RESOURCE = "RES-SILENT"
"""The simulator never answers for this resource: its prebookings time out."""
WAITLIST_RESOURCE = "RES-WAITLIST"
"""The simulator answers `waitlisted` for every reservation at this resource, and nothing more."""
NO_GRACE_LANE = "FT-NO-GRACE"
"""A no-show here is declared as soon as the service date ends (grace 0)."""
LONG_GRACE_LANE = "FT-LONG-GRACE"
"""A no-show here waits `LONG_GRACE_SECONDS` after the service date."""
LONG_GRACE_SECONDS = 10 * 365 * 24 * 3600.0
SHORT_WINDOW_LOUNGE = "LOUNGE-SHORT-WINDOW"
"""Walk-ins at this resource may be cancelled for a millisecond only."""
CONFIRMATION_TIMEOUT_SECONDS = 3.0
WAITLIST_TIMEOUT_SECONDS = 6.0


def isolated_settings(stack: Endpoints, run: str) -> Settings:
    """Settings with topic and group names of their own, so runs never see each other's messages."""
    return Settings(
        **stack.settings(),  # type: ignore[arg-type]
        **isolated_names(run),
        retry_backoff_seconds=0.1,
        max_message_bytes=64 * 1024,
        confirmation_timeout_seconds=CONFIRMATION_TIMEOUT_SECONDS,
        waitlist_timeout_seconds=WAITLIST_TIMEOUT_SECONDS,
        timer_poll_seconds=0.05,
        cancellation_windows={SHORT_WINDOW_LOUNGE: 0.001},
        no_show_graces={NO_GRACE_LANE: 0.0, LONG_GRACE_LANE: LONG_GRACE_SECONDS},
    )


async def until_assigned(broker: KafkaBroker) -> None:
    """Wait until every consumer of `broker` owns partitions, so inputs are read at once from then on."""
    consumers = [getattr(s, "consumer", None) for s in broker.subscribers]
    await eventually(lambda: all(c is not None and c.assignment() for c in consumers))


BOTH_LAYOUTS = pytest.mark.parametrize("topic_layout", list(TopicLayout), indirect=True, scope="module")
"""Marks a module whose tests run once per topic layout, each with a service of its own."""


@pytest.fixture(scope="module")
def topic_layout(request: pytest.FixtureRequest) -> TopicLayout:
    """The layout of this module's service: shared, unless the module runs in `BOTH_LAYOUTS`."""
    return cast(TopicLayout, getattr(request, "param", TopicLayout.SHARED))


@pytest.fixture(scope="module")
async def settings(stack: Endpoints, topic_layout: TopicLayout) -> Settings:
    """Settings of this module's service; its topics (and, per client, the flow clients' topics) exist
    before anything reads them."""
    settings = isolated_settings(stack, f"t{uuid.uuid4().hex[:8]}").model_copy(
        update={"topic_layout": topic_layout, "kafka_metadata_max_age_ms": 1000}
    )
    await ensure_topics(
        settings.kafka_bootstrap_servers, service_topics(settings), settings.topic_partitions, 1
    )
    if topic_layout is TopicLayout.PER_CLIENT:
        for client in FLOW_CLIENTS:
            await ensure_client_topics(settings, client)
    return settings


@pytest.fixture(scope="module")
async def service(settings: Settings) -> AsyncIterator[OrderService]:
    """The order service, consuming."""
    service = build_service(settings)
    await service.start()
    await until_assigned(service.broker)
    yield service
    await service.stop()


@pytest.fixture(scope="module")
async def simulator(settings: Settings) -> AsyncIterator[None]:
    """The resource simulator: confirms at once, refuses everything at `FULL_RESOURCE`, waitlists everything
    at `WAITLIST_RESOURCE`."""
    sim_settings = ResourceSimSettings(
        **settings.model_dump(),
        sim_fail_resources=FULL_RESOURCE,
        sim_silent_resources=SILENT_RESOURCE,
        sim_waitlist_resources=WAITLIST_RESOURCE,
        sim_group=f"{settings.consumer_group}.sim",
    )
    simulator = build_resource_sim(sim_settings)
    await simulator.start()
    await eventually(simulator.assigned)
    yield
    await simulator.stop()


@pytest.fixture(scope="module")
async def tap(settings: Settings) -> AsyncIterator[TopicTap]:
    """Everything the service publishes (in the `per_client` layout, for the flow clients), read from the
    beginning of each topic."""
    status, rejections = event_topics(settings)
    tap = TopicTap(
        settings.kafka_bootstrap_servers,
        [*status, settings.topic_resource_requests, *rejections, settings.topic_dead_letter],
    )
    await tap.start()
    yield tap
    await tap.stop()


@pytest.fixture(scope="module")
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    """A plain producer, standing in for client systems and resource operators."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    """A client of the service's Redis."""
    client = Redis.from_url(settings.redis_url.get_secret_value())
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """A local 3-node Redis Cluster (from the same redis-server), started once."""
    cluster = EmbeddedRedisCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(params=["single-node", "cluster"])
async def store_redis(request: pytest.FixtureRequest, stack: Endpoints) -> AsyncIterator[Redis]:
    """The store's Redis, both ways it is deployed: one node, and a Redis Cluster, where a script or
    transaction whose keys span two slots fails (CROSSSLOT) instead of running."""
    if request.param == "cluster":
        client = connect(request.getfixturevalue("redis_cluster_url"), cluster=True)
    else:
        client = connect(stack.redis_url)
    yield client
    await client.aclose()


def api_settings(settings: Settings, **overrides: object) -> ApiSettings:
    """The service's test settings, with loopback webhook targets allowed (the receivers run there), and
    any API setting in `overrides`."""
    return ApiSettings(
        **settings.model_dump()
        | {"relay_require_https": False, "relay_allowed_networks": ["127.0.0.0/8"]}
        | overrides
    )


@contextlib.asynccontextmanager
async def serving_api(settings: Settings, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API of `settings` (and API `overrides`) under uvicorn on a free loopback port, and a client
    pointed at it."""
    port = free_port()
    app = build_api(api_settings(settings, **overrides))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        server.should_exit = True
        await serving


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API of this module's settings, and a client pointed at it."""
    async with serving_api(settings) as client:
        yield client
