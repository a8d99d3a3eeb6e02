"""`orders webhooks …`: register and manage endpoints, inspect attempts, replay dead deliveries."""

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from service.clock import utc_now
from service.config import RelaySettings
from service.relay.announcements import announce_state_change
from service.relay.recovery import BeyondHorizon, recover_missed
from service.relay.safety import UnresolvableTarget, UnsafeTarget, check_endpoint_url
from service.store.capped_sets import LimitReached
from service.store.client import connect_with
from service.store.webhook_deliveries import DeliveryStore
from service.store.webhook_endpoints import Endpoint, EndpointState, EndpointStore, WebhookEventType

Action = Callable[[argparse.Namespace, EndpointStore, DeliveryStore, RelaySettings], Awaitable[int]]


def add_webhook_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the `webhooks` subcommands."""
    webhooks = commands.add_parser("webhooks", help="webhook endpoints: register, manage, inspect, replay")
    actions = webhooks.add_subparsers(dest="webhooks_command", required=True)

    add = actions.add_parser("add", help="register an endpoint; prints its signing secret once")
    add.add_argument("--client", required=True)
    add.add_argument("--url", required=True)
    add.add_argument("--description", default="")
    add.add_argument(
        "--status", type=int, action="append", help="deliver only these status codes (repeatable)"
    )
    add.add_argument(
        "--event-type",
        dest="event_types",
        action="append",
        choices=[t.value for t in WebhookEventType],
        help="deliver events of this type (repeatable; default: order_status_changed only)",
    )
    _bind(add, _add)
    listing = actions.add_parser("list", help="a client's endpoints (without secrets)")
    listing.add_argument("--client", required=True)
    _bind(listing, _list)
    for name, action in (("enable", _enable), ("disable", _disable), ("delete", _delete), ("dead", _dead)):
        parser = actions.add_parser(name, help=f"{name} an endpoint" if name != "dead" else "dead deliveries")
        parser.add_argument("--endpoint", required=True)
        _bind(parser, action)
    rotate = actions.add_parser(
        "rotate-secret", help="new secret; the old one signs too during the grace period"
    )
    rotate.add_argument("--endpoint", required=True)
    rotate.add_argument("--grace-seconds", type=float, default=24 * 3600)
    _bind(rotate, _rotate)
    attempts = actions.add_parser("attempts", help="the newest delivery attempts of an endpoint")
    attempts.add_argument("--endpoint", required=True)
    attempts.add_argument("--event", help="only this event_id")
    attempts.add_argument("--count", type=int, default=20)
    _bind(attempts, _attempts)
    replay = actions.add_parser("replay", help="queue dead deliveries again: one event, or all since a time")
    replay.add_argument("--endpoint", required=True)
    chosen = replay.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--event", help="the event_id to replay")
    chosen.add_argument(
        "--since", type=datetime.fromisoformat, help="replay every delivery that died since (ISO)"
    )
    _bind(replay, _replay)
    recover = actions.add_parser(
        "recover", help="queue again the client's events since a time that the endpoint missed"
    )
    recover.add_argument("--endpoint", required=True)
    recover.add_argument(
        "--since", type=datetime.fromisoformat, required=True, help="events that occurred since (ISO)"
    )
    _bind(recover, _recover)


def _bind(parser: argparse.ArgumentParser, action: Action) -> None:
    parser.set_defaults(run=lambda args: asyncio.run(_with_stores(args, action)))


async def _with_stores(args: argparse.Namespace, action: Action) -> int:
    settings = RelaySettings()
    async with connect_with(settings) as redis:
        return await action(args, EndpointStore(redis), DeliveryStore(redis), settings)


def _print(value: object) -> None:
    print(json.dumps(value, default=str))


async def _endpoint(store: EndpointStore, endpoint_id: str) -> Endpoint:
    endpoint = await store.get(endpoint_id)
    if endpoint is None:
        raise SystemExit(f"no endpoint {endpoint_id}")
    return endpoint


async def _add(
    args: argparse.Namespace, store: EndpointStore, _: DeliveryStore, settings: RelaySettings
) -> int:
    try:
        # The API's check: the same parsing, normalisation and refusals (service/api/webhooks.py).
        url = await check_endpoint_url(
            args.url, require_https=settings.relay_require_https, allowed=settings.relay_allowed_networks
        )
    except (UnsafeTarget, UnresolvableTarget) as error:
        raise SystemExit(f"refused: {error}") from None
    subscribed = [WebhookEventType(t) for t in args.event_types] if args.event_types else None
    try:
        endpoint = await store.create(
            args.client,
            url,
            utc_now(),
            args.description,
            args.status,
            subscribed,
            limit=settings.max_webhook_endpoints_per_client,
        )
    except LimitReached as error:
        raise SystemExit(f"refused: {error} (ORDERS_MAX_WEBHOOK_ENDPOINTS_PER_CLIENT)") from None
    _print({**endpoint.public(), "secret": endpoint.secrets[0].secret})
    return 0


async def _list(args: argparse.Namespace, store: EndpointStore, _: DeliveryStore, __: RelaySettings) -> int:
    for endpoint in await store.for_client(args.client):
        _print(endpoint.public())
    return 0


async def _enable(
    args: argparse.Namespace, store: EndpointStore, deliveries: DeliveryStore, _: RelaySettings
) -> int:
    endpoint = await store.set_state(
        (await _endpoint(store, args.endpoint)).endpoint_id, EndpointState.ACTIVE, None
    )
    await announce_state_change(
        store,
        deliveries,
        endpoint,
        state=EndpointState.ACTIVE,
        reason="enabled by an operator",
        now=utc_now(),
    )
    _print(endpoint.public())
    return 0


async def _disable(
    args: argparse.Namespace, store: EndpointStore, deliveries: DeliveryStore, _: RelaySettings
) -> int:
    reason = "disabled by an operator"
    endpoint = await store.set_state(
        (await _endpoint(store, args.endpoint)).endpoint_id, EndpointState.DISABLED, reason
    )
    await announce_state_change(
        store, deliveries, endpoint, state=EndpointState.DISABLED, reason=reason, now=utc_now()
    )
    _print(endpoint.public())
    return 0


async def _delete(args: argparse.Namespace, store: EndpointStore, _: DeliveryStore, __: RelaySettings) -> int:
    await store.delete(await _endpoint(store, args.endpoint))
    return 0


async def _rotate(args: argparse.Namespace, store: EndpointStore, _: DeliveryStore, __: RelaySettings) -> int:
    endpoint = await _endpoint(store, args.endpoint)
    rotated = await store.rotate_secret(
        endpoint.endpoint_id, utc_now(), timedelta(seconds=args.grace_seconds)
    )
    secret = rotated[1]
    _print({"endpoint_id": endpoint.endpoint_id, "secret": secret})
    return 0


async def _attempts(
    args: argparse.Namespace, _: EndpointStore, deliveries: DeliveryStore, __: RelaySettings
) -> int:
    for attempt in await deliveries.attempts(args.endpoint, args.count, args.event):
        _print(attempt)
    return 0


async def _dead(
    args: argparse.Namespace, _: EndpointStore, deliveries: DeliveryStore, __: RelaySettings
) -> int:
    for event_id, record in (await deliveries.dead(args.endpoint)).items():
        _print({"event_id": event_id, **record})
    return 0


async def _replay(
    args: argparse.Namespace, _: EndpointStore, deliveries: DeliveryStore, __: RelaySettings
) -> int:
    if args.event:
        replayed = await deliveries.replay(args.endpoint, [args.event], utc_now())
    else:
        since = args.since if args.since.tzinfo else args.since.astimezone()
        replayed = await deliveries.replay_since(args.endpoint, since, utc_now())
    _print({"replayed": replayed})
    return 0


async def _recover(
    args: argparse.Namespace, store: EndpointStore, deliveries: DeliveryStore, settings: RelaySettings
) -> int:
    endpoint = await _endpoint(store, args.endpoint)
    since = args.since if args.since.tzinfo else args.since.astimezone()
    try:
        recovered = await recover_missed(settings, deliveries, endpoint, since=since, now=utc_now())
    except BeyondHorizon as error:
        raise SystemExit(f"refused: {error}") from None
    _print({"endpoint_id": endpoint.endpoint_id, "read": recovered.read, "queued": recovered.queued})
    return 0
