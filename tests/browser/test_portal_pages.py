"""The portal's pages as a person uses them, in headless Chromium: each test drives the forms with labels and
buttons, and checks what the real service, relay and receiver did."""

from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer
from playwright.async_api import Page
from redis.asyncio import Redis

from contracts.statuses import OrderStatus
from service.config import Settings
from service.store.orders import OrderStore
from testkit.factories import prebooking, unique
from testkit.kafka_tap import produce
from testkit.webhook_receiver import Reply, WebhookReceiver
from tests.browser.conftest import OPERATOR_PASSWORD, open_portal
from tests.waiting import eventually


async def reload_until(page: Page, shown: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    """Reload the page until `shown()`: the pages do not refresh themselves (no scripts)."""

    async def probe() -> bool:
        await page.reload()
        return await shown()

    await eventually(probe, timeout=timeout)


async def add_endpoint(page: Page, url: str) -> tuple[str, str]:
    """Add an endpoint with the home page's form; its id and the secret shown once."""
    await page.get_by_label("URL", exact=True).fill(url)
    await page.get_by_label("Description").fill("added in the browser test")
    await page.get_by_role("button", name="Add endpoint").click()
    secret = await page.get_by_label("Signing secret").input_value()
    assert secret.startswith("whsec_")
    await page.get_by_role("link", name="Go to the endpoint").click()
    endpoint_id = page.url.rsplit("/", 1)[1]
    return endpoint_id, secret


async def assert_labelled(page: Page) -> None:
    """Every field a person fills has a label (or an accessible name), and every drawing a text one."""
    unlabelled = await page.eval_on_selector_all(
        "input:not([type=hidden]), select, textarea, button",
        "els => els.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')"
        " && !(e.tagName === 'BUTTON' && e.textContent.trim())).map(e => e.outerHTML)",
    )
    assert unlabelled == [], unlabelled
    assert await page.locator("input:not([type=hidden]), button").count() > 0, "a page with fields to check"
    unnamed = await page.eval_on_selector_all("svg", "els => els.filter(e => !e.getAttribute('aria-label'))")
    assert unnamed == []


def in_table(page: Page, table: str, *texts: str) -> Callable[[], Awaitable[bool]]:
    async def shown() -> bool:
        rows = page.locator(f"{table} tbody tr")
        for row in await rows.all():
            text = await row.inner_text()
            if all(t in text for t in texts):
                return True
        return False

    return shown


async def test_an_endpoint_added_in_the_portal_gets_a_delivery_shown_in_its_attempts(
    page: Page,
    portal: str,
    redis: Redis,
    receiver: WebhookReceiver,
    producer: AIOKafkaProducer,
    settings: Settings,
) -> None:
    client_id = unique("client")
    await open_portal(page, portal, redis, client_id)
    await assert_labelled(page)
    _, secret = await add_endpoint(page, receiver.url)
    await assert_labelled(page)

    command = prebooking(client_id=client_id)
    await produce(producer, settings.topic_commands, command, command.order_id)
    (first, *_) = await receiver.wait_for(receiver.delivered)
    assert receiver.verifies(first, secret) and first.body["order_id"] == command.order_id

    await reload_until(page, in_table(page, "#attempt-table", first.webhook_id, "200"))
    row = page.locator("#attempt-table tbody tr", has_text=first.webhook_id).first
    await row.get_by_role("link", name=first.webhook_id).click()
    assert await page.locator("#response-status").inner_text() == "200"
    assert command.order_id in await page.locator("#request-body").inner_text()
    # The headers as sent (the attempt log keeps them), to the exact timestamp the receiver got.
    sent = {name.lower(): value for name, value in first.headers.items()}
    headers = await page.locator("table", has_text="webhook-timestamp").inner_text()
    assert sent["webhook-timestamp"] in headers and sent["webhook-id"] in headers
    assert sent["webhook-signature"] not in await page.content()
    assert secret not in await page.content()


async def test_a_failing_endpoints_dead_delivery_is_found_and_replayed(
    page: Page, portal: str, redis: Redis, receiver: WebhookReceiver
) -> None:
    await open_portal(page, portal, redis, unique("client"))
    receiver.default = Reply(status=500)
    await add_endpoint(page, receiver.url)
    await page.get_by_role("button", name="Send a test event").click()
    assert "test event is queued" in await page.get_by_role("status").inner_text()
    # The first attempt and both retries of the relay's schedule, all answered 500: the delivery is dead.
    attempts = await receiver.wait_for(lambda: receiver.received[2:3])
    event_id = attempts[0].webhook_id
    await reload_until(page, in_table(page, "#dead-table", event_id))

    receiver.default = Reply(status=200)
    await page.get_by_role("button", name=f"Replay {event_id}").click()
    assert "queued again" in await page.get_by_role("status").inner_text()
    await receiver.wait_for(lambda: receiver.delivered(event_id))
    await reload_until(page, in_table(page, "#attempt-table", event_id, "200"))
    assert await page.locator("#dead-table").count() == 0, "replayed: no longer dead"


async def test_a_rotated_secret_is_shown_once_and_signs_the_next_delivery(
    page: Page, portal: str, redis: Redis, receiver: WebhookReceiver
) -> None:
    await open_portal(page, portal, redis, unique("client"))
    endpoint_id, old = await add_endpoint(page, receiver.url)
    grace = page.get_by_label("Old secret keeps signing for (seconds)")
    await grace.fill("0")
    await grace.press("Enter")  # the keyboard alone submits the form
    new = await page.get_by_label("Signing secret").input_value()
    assert new.startswith("whsec_") and new != old

    await page.get_by_role("link", name="Go to the endpoint").click()
    assert new not in await page.content() and old not in await page.content()
    await page.get_by_role("button", name="Send a test event").click()
    (delivered,) = await receiver.wait_for(receiver.delivered)
    assert delivered.body["endpoint_id"] == endpoint_id
    assert receiver.verifies(delivered, new) and not receiver.verifies(delivered, old)


async def test_an_orders_history_is_drawn_as_a_timeline(
    page: Page, portal: str, redis: Redis, producer: AIOKafkaProducer, settings: Settings
) -> None:
    client_id = unique("client")
    command = prebooking(client_id=client_id)
    await produce(producer, settings.topic_commands, command, command.order_id)
    orders = OrderStore(redis)

    async def confirmed() -> bool:
        order = await orders.get(client_id, command.order_id)
        return order is not None and order.status is OrderStatus.CONFIRMED

    await eventually(confirmed)
    await open_portal(page, portal, redis, client_id)
    await page.get_by_label("Order id").fill(command.order_id)
    await page.get_by_role("button", name="Show order").click()
    assert "Confirmed" in await page.locator("#order-status").inner_text()
    timeline = page.get_by_role("img", name="Timeline: 1. Pending, 2. Confirmed")
    assert await timeline.count() == 1
    labels = await timeline.locator("text").all_text_contents()
    assert "Pending" in labels and "Confirmed" in labels
    assert "PAX-1" in await page.locator("table").inner_text()
    await assert_labelled(page)


async def test_an_operator_sees_a_dead_letter_decoded(
    page: Page, portal: str, producer: AIOKafkaProducer, settings: Settings
) -> None:
    marker = unique("broken")
    await produce(producer, settings.topic_commands, f'{{"order_id": "{marker}"'.encode(), "k")

    await page.goto(f"{portal}/portal/operator/login")
    await page.get_by_label("Operator password").fill(OPERATOR_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{portal}/portal/operator")
    await reload_until(page, in_table(page, "#dead-letters", marker))
    row = page.locator("#dead-letters tbody tr", has_text=marker).first
    text = await row.inner_text()
    assert "NOT_JSON" in text and settings.topic_commands in text

    await assert_labelled(page)
    await page.get_by_role("link", name="Metrics").click()
    await assert_labelled(page)
    assert await page.get_by_role("img", name="Consumer lag (records not yet read)").count() == 1
    assert await page.get_by_role("img", name="Webhook attempt latency (attempts per bucket)").count() == 1
    await page.reload()  # a second reading: the rates between the two are drawn
    assert await page.get_by_role("img", name="webhook deliveries per second").count() == 1
