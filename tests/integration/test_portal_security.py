"""The portal's security on the real broker and Redis: single-use and expiring links, one client's session
never reaching another's ids, CSRF on every form, and no secret in a page but the one shown once."""

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi.routing import APIRoute
from redis.asyncio import Redis

from service.api.portal.routes import pages
from service.config import Settings
from service.store.portal_sessions import OPERATOR_FAILURES_PER_MINUTE, PortalSessions
from service.store.webhook_endpoints import EndpointState, EndpointStore
from testkit.api_keys import issue_key
from testkit.factories import unique
from tests.integration.conftest import serving_api
from tests.waiting import eventually

pytestmark = pytest.mark.integration

PASSWORD = "operator-password-for-tests"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
async def portal(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API with the operator login on."""
    async with serving_api(settings, portal_operator_password=PASSWORD) as client:
        yield client


async def link_of(portal: httpx.AsyncClient, redis: Redis, client_id: str) -> str:
    """A portal link for `client_id`, asked for with one of its API keys; the path it opens."""
    key = await issue_key(redis, client_id)
    response = await portal.post(
        "/v1/portal-sessions", json={}, headers={"Authorization": f"Bearer {key.token}"}
    )
    assert response.status_code == 201, response.text
    url: str = response.json()["url"]
    assert url.startswith("http://") and "/portal/open/pl_" in url
    return "/portal/open/" + url.rsplit("/", 1)[1]


async def signed_in(portal: httpx.AsyncClient, redis: Redis, client_id: str) -> httpx.AsyncClient:
    """A browser-like client with a session of `client_id`'s pages."""
    browser = httpx.AsyncClient(base_url=portal.base_url)
    opened = await browser.get(await link_of(portal, redis, client_id))
    assert opened.status_code == 200, opened.text
    return browser


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found is not None, page.text
    return found.group(1)


async def test_a_link_opens_one_session_with_a_strict_http_only_cookie(
    portal: httpx.AsyncClient, redis: Redis
) -> None:
    path = await link_of(portal, redis, unique("client"))
    first = httpx.AsyncClient(base_url=portal.base_url)
    opened = await first.get(path)
    assert opened.status_code == 200
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/portal" in cookie
    assert "Secure" not in cookie  # plain HTTP and no ORDERS_PORTAL_SECURE_COOKIES
    assert opened.headers["referrer-policy"] == "no-referrer"
    assert (await first.get("/portal/")).status_code == 200

    again = httpx.AsyncClient(base_url=portal.base_url)
    reused = await again.get(path)
    assert reused.status_code == 404 and "set-cookie" not in reused.headers
    assert (await again.get("/portal/")).status_code == 401


async def test_links_are_stored_as_digests_and_expire(portal: httpx.AsyncClient, redis: Redis) -> None:
    sessions = PortalSessions(redis, 60)
    link = await sessions.issue_link("client-a", 1, datetime.now(UTC))
    assert await redis.keys(f"*{link.token}*") == []  # only its digest is a key
    stored = [k for k in await redis.keys("portal:link:*") if 0 < await redis.ttl(k) <= 1]
    assert stored, "the link's record has an expiry"
    await eventually(lambda: _gone(redis, stored), timeout=5)
    browser = httpx.AsyncClient(base_url=portal.base_url)
    assert (await browser.get(f"/portal/open/{link.token}")).status_code == 404
    assert (await browser.get("/portal/open/pl_made-up")).status_code == 404


async def _gone(redis: Redis, keys: list[bytes | str]) -> bool:
    return not await redis.exists(*keys)


async def test_the_route_refuses_callers_without_a_key(portal: httpx.AsyncClient) -> None:
    assert (await portal.post("/v1/portal-sessions", json={})).status_code == 401


async def test_a_link_lives_no_longer_than_the_setting(portal: httpx.AsyncClient, redis: Redis) -> None:
    key = await issue_key(redis, unique("client"))
    headers = {"Authorization": f"Bearer {key.token}"}
    longer = await portal.post("/v1/portal-sessions", json={"ttl_seconds": 3600}, headers=headers)
    assert longer.status_code == 201
    lifetime = datetime.fromisoformat(longer.json()["expires_at"]) - datetime.now(UTC)
    assert 800 < lifetime.total_seconds() <= 900  # ORDERS_PORTAL_LINK_TTL_SECONDS, not the 3600 asked
    shorter = await portal.post("/v1/portal-sessions", json={"ttl_seconds": 60}, headers=headers)
    lifetime = datetime.fromisoformat(shorter.json()["expires_at"]) - datetime.now(UTC)
    assert 0 < lifetime.total_seconds() <= 60
    too_short = await portal.post("/v1/portal-sessions", json={"ttl_seconds": 1}, headers=headers)
    assert too_short.status_code == 422


async def test_a_client_session_never_reaches_another_clients_ids(
    portal: httpx.AsyncClient, redis: Redis
) -> None:
    owner, other = unique("client"), unique("client")
    endpoints = EndpointStore(redis)
    theirs = await endpoints.create(other, "http://127.0.0.1:9/hooks", datetime.now(UTC))
    browser = await signed_in(portal, redis, owner)
    home = await browser.get("/portal/")
    assert theirs.endpoint_id not in home.text
    page = await browser.get(f"/portal/endpoints/{theirs.endpoint_id}")
    assert page.status_code == 404
    token = csrf_of(home)
    for action in ("disable", "delete", "rotate", "test", "edit"):
        response = await browser.post(
            f"/portal/endpoints/{theirs.endpoint_id}/{action}",
            data={"csrf": token, "url": "http://127.0.0.1:8/x", "event_types": "order_status_changed"},
        )
        assert response.status_code == 404, action
    stored = await endpoints.get(theirs.endpoint_id)
    assert stored is not None and stored.state is EndpointState.ACTIVE
    assert stored.url == theirs.url and stored.secrets == theirs.secrets
    attempt = await browser.get(
        f"/portal/endpoints/{theirs.endpoint_id}/attempt", params={"event_id": "e", "attempt": "1"}
    )
    assert attempt.status_code == 404


async def test_every_form_needs_the_sessions_csrf_token(portal: httpx.AsyncClient, redis: Redis) -> None:
    client_id = unique("client")
    endpoints = EndpointStore(redis)
    mine = await endpoints.create(client_id, "http://127.0.0.1:9/hooks", datetime.now(UTC))
    browser = await signed_in(portal, redis, client_id)
    other = await signed_in(portal, redis, client_id)
    foreign_token = csrf_of(await other.get("/portal/"))  # a valid token, of another session
    forms = _post_routes()
    assert len(forms) >= 10
    for path in forms:
        target = path.replace("{endpoint_id}", mine.endpoint_id)
        for data in ({}, {"csrf": ""}, {"csrf": foreign_token}):
            fields = data | {"url": "http://127.0.0.1:8/x", "event_id": "x", "since": "2026-01-01T00:00"}
            response = await browser.post(target, data=fields)
            assert response.status_code == 403, (target, data)
    stored = await endpoints.get(mine.endpoint_id)
    assert stored is not None and stored.state is EndpointState.ACTIVE
    assert stored.url == mine.url and stored.secrets == mine.secrets
    assert (await browser.get("/portal/")).status_code == 200, "still signed in: logout needs the token too"


def _post_routes() -> list[str]:
    """Every POST path of the portal's pages but the operator login (which has no session yet)."""
    paths = [r.path for r in pages.routes if isinstance(r, APIRoute) and "POST" in (r.methods or set())]
    assert all(p.startswith("/portal/") for p in paths)
    return [p for p in paths if p != "/portal/operator/login"]


async def test_no_secret_in_any_page_but_the_one_shown_once(portal: httpx.AsyncClient, redis: Redis) -> None:
    client_id = unique("client")
    browser = await signed_in(portal, redis, client_id)
    home = await browser.get("/portal/")
    created = await browser.post(
        "/portal/endpoints",
        data={
            "csrf": csrf_of(home),
            "url": "http://127.0.0.1:9/hooks",
            "description": "secret test",
            "event_types": "order_status_changed",
        },
    )
    assert created.status_code == 200, created.text
    assert created.headers["cache-control"] == "no-store"
    (endpoint,) = await EndpointStore(redis).for_client(client_id)
    secret = endpoint.secrets[0].secret
    assert created.text.count(secret) == 1

    rotated = await browser.post(
        f"/portal/endpoints/{endpoint.endpoint_id}/rotate", data={"csrf": csrf_of(home), "grace_seconds": "0"}
    )
    assert rotated.status_code == 200
    stored = await EndpointStore(redis).get(endpoint.endpoint_id)
    assert stored is not None
    new_secret = stored.secrets[0].secret
    assert new_secret != secret and rotated.text.count(new_secret) == 1 and secret not in rotated.text

    cookie = browser.cookies["orders_portal"]
    for path in ("/portal/", f"/portal/endpoints/{endpoint.endpoint_id}", "/portal/events", "/portal/orders"):
        page = await browser.get(path)
        assert page.status_code == 200, path
        for hidden in (secret, new_secret, cookie, PASSWORD):
            assert hidden not in page.text, path


async def test_operator_login_is_separate_from_client_links(portal: httpx.AsyncClient, redis: Redis) -> None:
    anonymous = httpx.AsyncClient(base_url=portal.base_url)
    assert (await anonymous.get("/portal/operator")).status_code == 401
    wrong = await anonymous.post("/portal/operator/login", data={"password": "guess"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    client = await signed_in(portal, redis, unique("client"))
    assert (await client.get("/portal/operator")).status_code == 401

    operator = httpx.AsyncClient(base_url=portal.base_url)
    login = await operator.post("/portal/operator/login", data={"password": PASSWORD})
    assert login.status_code == 200 and PASSWORD not in login.text
    page = await operator.get("/portal/operator")
    assert page.status_code == 200 and "Dead letters" in page.text
    assert (await operator.get("/portal/")).status_code == 401, "an operator session is no client's"

    token = csrf_of(page)
    await operator.post("/portal/logout", data={"csrf": token})
    assert (await operator.get("/portal/operator")).status_code == 401


async def test_operator_login_is_off_without_its_setting(settings: Settings) -> None:
    async with serving_api(settings, portal_secure_cookies=True) as api:
        assert (await api.get("/portal/operator/login")).status_code == 404
        assert (await api.post("/portal/operator/login", data={"password": ""})).status_code == 404


async def test_the_cookie_is_secure_when_tls_is_in_front(settings: Settings, redis: Redis) -> None:
    async with serving_api(settings, portal_secure_cookies=True) as api:
        path = await link_of(api, redis, unique("client"))
        opened = await api.get(path)
        assert opened.status_code == 200 and "Secure" in opened.headers["set-cookie"]
    records = await redis.keys("portal:*")
    assert records and all([await redis.ttl(k) > 0 for k in records]), "every portal record expires"


async def test_wrong_operator_passwords_lock_the_login_for_a_minute(settings: Settings, redis: Redis) -> None:
    async with serving_api(settings, portal_operator_password=PASSWORD) as api:
        await redis.delete("portal:operator-failures")
        try:
            for _ in range(OPERATOR_FAILURES_PER_MINUTE):
                wrong = await api.post("/portal/operator/login", data={"password": "guess"})
                assert wrong.status_code == 401
            locked = await api.post("/portal/operator/login", data={"password": PASSWORD})
            assert locked.status_code == 429 and "set-cookie" not in locked.headers
            assert 0 < await redis.ttl("portal:operator-failures") <= 60
        finally:
            await redis.delete("portal:operator-failures")
        assert (await api.post("/portal/operator/login", data={"password": PASSWORD})).status_code == 200
