"""The portal in a real headless Chromium: the API, the order service, the resource simulator and the relay
run on the real (embedded) broker and Redis, with a loopback webhook receiver as the client's endpoint."""

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Browser, Page, async_playwright
from redis.asyncio import Redis

from service.clock import utc_now
from service.config import RelaySettings, Settings
from service.relay.app import Relay, build_relay
from service.store.portal_sessions import PortalSessions
from testkit.webhook_receiver import WebhookReceiver
from tests.integration.conftest import (  # the module's service and simulator, as the flows' tests run them
    service,
    serving_api,
    settings,
    simulator,
    topic_layout,
    until_assigned,
)

__all__ = ["service", "settings", "simulator", "topic_layout"]

CHROMIUM = "/usr/bin/chromium"
"""Debian's `chromium` package (`make test` installs it when missing)."""
SCREENSHOTS = Path(__file__).parent / "screenshots"
OPERATOR_PASSWORD = "browser-tests-operator"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, where `make test` installs it."""
    executable = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if executable is None:
        pytest.fail("Debian's chromium is not installed: `make test` installs it (apt-get install chromium)")
    SCREENSHOTS.mkdir(exist_ok=True)
    return executable


@pytest.fixture(scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """One headless Chromium for the session; each test opens pages of its own."""
    executable = chromium
    async with async_playwright() as playwright:
        # --no-sandbox: the tests may run as root (containers), where Chromium's sandbox refuses to start.
        launched = await playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A page in a fresh browser context (no cookies from other tests); a screenshot of it is saved as the
    test ends, named after the test."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    opened = await context.new_page()
    yield opened
    await opened.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    await context.close()


@pytest.fixture(scope="module")
async def relay(settings: Settings) -> AsyncIterator[Relay]:
    """The relay on the service's status and rejection topics: loopback allowed, retries in tenths of a
    second, so a failing endpoint's delivery is dead within a second."""
    relay_settings = RelaySettings(
        **settings.model_dump()
        | {
            "relay_group": f"{settings.consumer_group}.relay-{uuid.uuid4().hex[:6]}",
            "relay_require_https": False,
            "relay_allowed_networks": ["127.0.0.0/8"],
            "relay_timeout_seconds": 2.0,
            "relay_retry_schedule_seconds": [0.1, 0.1],
            "relay_jitter": 0.0,
            "relay_poll_seconds": 0.02,
            "relay_breaker_failures": 1000,
        }
    )
    relay = build_relay(relay_settings)
    await relay.start()
    await until_assigned(relay.broker)
    yield relay
    await relay.stop()


@pytest.fixture(scope="module")
async def portal(settings: Settings, service: object, simulator: None, relay: Relay) -> AsyncIterator[str]:
    """The API (with the portal, and the operator login on) while the service, simulator and relay run;
    its base URL."""
    async with serving_api(settings, portal_operator_password=OPERATOR_PASSWORD) as client:
        yield str(client.base_url).rstrip("/")


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url.get_secret_value())
    yield client
    await client.aclose()


@pytest.fixture(scope="module")
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


async def open_portal(page: Page, portal: str, redis: Redis, client_id: str) -> None:
    """Open a fresh single-use link of `client_id`, as a client would from a mail."""
    link = await PortalSessions(redis, 3600).issue_link(client_id, 300, utc_now())
    await page.goto(f"{portal}/portal/open/{link.token}")
    await page.wait_for_url(f"{portal}/portal/")
