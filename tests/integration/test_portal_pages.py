"""The portal's forms run the API's own rules: the SSRF checks and limits, state changes, replay, the
catalog, command outcomes; and `orders portal link` issues links that open the portal."""

import html
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from redis.asyncio import Redis

from service.api.portal.figures import CATALOG
from service.config import Settings
from service.domain.command_outcomes import OutcomeRecord
from service.store.command_outcomes import CommandOutcomeStore
from service.store.orders import OrderStore
from service.store.webhook_endpoints import EndpointState, EndpointStore
from testkit.commands import run_orders
from testkit.factories import unique
from tests.integration.conftest import serving_api
from tests.integration.test_portal_security import csrf_of, signed_in

pytestmark = pytest.mark.integration

OPERATOR = "pages-operator-password"


@pytest.fixture(scope="module")
async def portal(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API, with two endpoints per client at most (to reach the limit) and https required (to see the
    API's own refusal of a plain-http URL), and the operator login on."""
    async with serving_api(
        settings,
        max_webhook_endpoints_per_client=2,
        relay_require_https=True,
        portal_operator_password=OPERATOR,
    ) as client:
        yield client


async def add(browser: httpx.AsyncClient, token: str, url: str) -> httpx.Response:
    return await browser.post(
        "/portal/endpoints", data={"csrf": token, "url": url, "event_types": "order_status_changed"}
    )


async def test_adding_an_endpoint_makes_the_apis_checks(portal: httpx.AsyncClient, redis: Redis) -> None:
    client_id = unique("client")
    browser = await signed_in(portal, redis, client_id)
    token = csrf_of(await browser.get("/portal/"))
    plain = await add(browser, token, "http://127.0.0.1:9/hooks")
    assert plain.status_code == 422 and "refused webhook URL" in plain.text
    metadata = await add(browser, token, "https://169.254.169.254/latest")
    assert metadata.status_code == 422 and "refused webhook URL" in metadata.text
    assert await EndpointStore(redis).for_client(client_id) == []

    for _ in range(2):
        assert (await add(browser, token, "https://127.0.0.1:9/hooks")).status_code == 200
    third = await add(browser, token, "https://127.0.0.1:9/hooks")
    assert third.status_code == 422 and "remove one before adding another" in third.text
    assert len(await EndpointStore(redis).for_client(client_id)) == 2


async def test_disable_enable_edit_and_delete(portal: httpx.AsyncClient, redis: Redis) -> None:
    client_id = unique("client")
    endpoints = EndpointStore(redis)
    mine = await endpoints.create(client_id, "https://127.0.0.1:9/hooks", datetime.now(UTC))
    browser = await signed_in(portal, redis, client_id)
    page = f"/portal/endpoints/{mine.endpoint_id}"
    token = csrf_of(await browser.get(page))

    disabled = await browser.post(f"{page}/disable", data={"csrf": token}, follow_redirects=True)
    assert disabled.status_code == 200 and 'id="state" class="state-disabled"' in disabled.text
    assert (stored := await endpoints.get(mine.endpoint_id)) and stored.state is EndpointState.DISABLED
    await browser.post(f"{page}/enable", data={"csrf": token})
    assert (stored := await endpoints.get(mine.endpoint_id)) and stored.state is EndpointState.ACTIVE

    edited = await browser.post(
        f"{page}/edit",
        data={
            "csrf": token,
            "url": "https://127.0.0.1:10/other",
            "description": "changed",
            "status_filter": "1, 2",
            "event_types": ["order_status_changed", "command_rejected"],
        },
    )
    assert edited.status_code == 303
    stored = await endpoints.get(mine.endpoint_id)
    assert stored is not None and stored.url == "https://127.0.0.1:10/other"
    assert stored.status_filter == [1, 2] and stored.description == "changed"
    refused = await browser.post(
        f"{page}/edit",
        data={"csrf": token, "url": "https://169.254.169.254/", "event_types": "command_rejected"},
    )
    assert refused.status_code == 422
    assert (stored := await endpoints.get(mine.endpoint_id)) and stored.url == "https://127.0.0.1:10/other"

    deleted = await browser.post(f"{page}/delete", data={"csrf": token})
    assert deleted.status_code == 303 and await endpoints.get(mine.endpoint_id) is None
    assert (await browser.get(page)).status_code == 404


async def test_replay_and_recovery_forms_answer_what_they_did(
    portal: httpx.AsyncClient, redis: Redis
) -> None:
    client_id = unique("client")
    mine = await EndpointStore(redis).create(client_id, "https://127.0.0.1:9/hooks", datetime.now(UTC))
    browser = await signed_in(portal, redis, client_id)
    page = f"/portal/endpoints/{mine.endpoint_id}"
    token = csrf_of(await browser.get(page))
    nothing = await browser.post(f"{page}/replay", data={"csrf": token, "since": "2026-01-01T00:00"})
    assert nothing.headers["location"].endswith("?error=nothing")
    too_old = await browser.post(f"{page}/recover", data={"csrf": token, "since": "2000-01-01T00:00"})
    assert too_old.headers["location"].endswith("?error=horizon")
    started = await browser.post(
        f"{page}/recover", data={"csrf": token, "since": datetime.now(UTC).isoformat()}
    )
    assert started.headers["location"].endswith("?notice=recovering")
    shown = await browser.get(started.headers["location"])
    assert "Recovery started" in shown.text
    injected = await browser.get(f"{page}?notice=<script>alert(1)</script>&error=x")
    assert "<script>alert" not in injected.text, "a notice is named, never echoed"


async def test_the_catalog_shows_each_event_type_with_a_valid_example(
    portal: httpx.AsyncClient, redis: Redis
) -> None:
    browser = await signed_in(portal, redis, unique("client"))
    page = await browser.get("/portal/events")
    assert page.status_code == 200
    for event_type in CATALOG:
        assert f'id="ev-{event_type}"' in page.text
    examples = re.findall(r"<h3>Example</h3>\s*<pre>(.*?)</pre>", page.text, re.S)
    assert len(examples) == len(CATALOG)
    parsed = [json.loads(html.unescape(example)) for example in examples]
    assert [p["type"] for p in parsed] == list(CATALOG)


async def test_a_commands_outcome_is_shown_to_its_client_only(
    portal: httpx.AsyncClient, redis: Redis
) -> None:
    owner, other = unique("client"), unique("client")
    command_id = unique("cmd")
    outcome = OutcomeRecord(
        command_id=command_id,
        client_id=owner,
        command_type="create_prebooking",
        order_id="ORD-1",
        outcome="accepted",
        recorded_at=datetime.now(UTC),
    )
    await CommandOutcomeStore(redis).record_accepted(outcome)
    mine = await (await signed_in(portal, redis, owner)).get(
        "/portal/commands", params={"command_id": command_id}
    )
    assert mine.status_code == 200 and 'id="outcome">accepted' in mine.text
    theirs = await (await signed_in(portal, redis, other)).get(
        "/portal/commands", params={"command_id": command_id}
    )
    assert theirs.status_code == 404 and "create_prebooking" not in theirs.text


async def test_orders_portal_link_prints_a_link_that_opens_once(
    portal: httpx.AsyncClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "REDIS_URL": settings.redis_url.get_secret_value(),
        "ORDERS_PORTAL_BASE_URL": str(portal.base_url).rstrip("/"),
    }
    client_id = unique("client")
    done = run_orders("portal", "link", "--client", client_id, "--ttl", "60", environment=environment)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["client_id"] == client_id and printed["url"].startswith(str(portal.base_url))
    expires = datetime.fromisoformat(printed["expires_at"])
    assert 0 < (expires - datetime.now(UTC)).total_seconds() <= 60

    token = printed["url"].rsplit("/", 1)[1]
    browser = httpx.AsyncClient(base_url=portal.base_url)
    with caplog.at_level(logging.INFO, logger="service.api.access"):
        opened = await browser.get(printed["url"])
        assert opened.status_code == 200 and f"client {client_id}" in opened.text
        assert (await httpx.AsyncClient().get(printed["url"])).status_code == 404
    paths = [getattr(r, "path", "") for r in caplog.records]
    assert "/portal/open/…" in paths, "logged, without the token"
    assert all(token not in r.getMessage() + str(r.__dict__) for r in caplog.records)

    refused = run_orders("portal", "link", "--client=bad/id", environment=environment)
    assert refused.returncode == 2 and "is not a client id" in refused.stderr


async def test_the_operator_sees_endpoints_by_state_across_clients_and_anomalies(
    portal: httpx.AsyncClient, redis: Redis
) -> None:
    endpoints = EndpointStore(redis)
    active = await endpoints.create(unique("client"), "https://127.0.0.1:9/a", datetime.now(UTC))
    disabled = await endpoints.create(unique("client"), "https://127.0.0.1:9/d", datetime.now(UTC))
    await endpoints.set_state(disabled.endpoint_id, EndpointState.DISABLED, "answered 410 Gone")
    anomaly_order = unique("ORD")
    await OrderStore(redis).record_anomalies([(active.client_id, anomaly_order, "reply/r-1", "LATE_REPLY")])

    operator = httpx.AsyncClient(base_url=portal.base_url)
    assert (await operator.post("/portal/operator/login", data={"password": OPERATOR})).status_code == 200
    page = (await operator.get("/portal/operator")).text
    sections = {state: page.index(f"<h3>{state} (") for state in ("ACTIVE", "PAUSED", "DISABLED")}
    assert sections["ACTIVE"] < page.index(active.endpoint_id) < sections["PAUSED"]
    assert sections["DISABLED"] < page.index(disabled.endpoint_id)
    assert "answered 410 Gone" in page and disabled.client_id in page
    assert anomaly_order in page and "LATE_REPLY" in page
    for endpoint in (active, disabled):
        assert endpoint.secrets[0].secret not in page
