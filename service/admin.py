"""Admin commands: entitlement balances, API keys and the anomaly log, straight against Redis."""

import argparse
import asyncio
import json
import re
import sys

from aiokafka.errors import KafkaError
from pydantic import TypeAdapter, ValidationError

from contracts.base import ClientId, ClientIdentifier
from service.clock import utc_now
from service.config import load_settings
from service.kafka import ensure_client_topics
from service.store.authentication import ApiKeyStore
from service.store.capped_sets import LimitReached
from service.store.client import connect_with
from service.store.entitlements import EntitlementStore
from service.store.orders import OrderStore

_CLIENT_IDENTIFIER: TypeAdapter[str] = TypeAdapter(ClientIdentifier)
_KEY_ID = re.compile(r"[0-9a-f]{16}")


def client_identifier(value: str) -> str:
    """An argparse type: a client identifier as the contract has it (no `/`, which would make the
    credential's Redis key another client's)."""
    try:
        return _CLIENT_IDENTIFIER.validate_python(value)
    except ValidationError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a client identifier (1-128 letters, digits and . _ : -)"
        ) from None


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return number


def _key_id(value: str) -> str:
    """An argparse type: an API key id as `client create` prints it (16 hex digits)."""
    if not _KEY_ID.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a key id (16 hexadecimal digits)")
    return value


def add_admin_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """`orders entitlements grant|show`, `orders client create|revoke`, `orders history` and
    `orders anomalies`."""
    entitlements = commands.add_parser(
        "entitlements", help="walk-in entitlement balances per client and credential"
    )
    actions = entitlements.add_subparsers(dest="entitlements_command", required=True)
    grant = actions.add_parser(
        "grant", help="add units to a credential's balance (creates it); prints the balance"
    )
    show = actions.add_parser("show", help="print a credential's balance")
    for parser in (grant, show):
        parser.add_argument("--client", required=True, type=client_identifier, help="client_id")
        parser.add_argument(
            "--credential",
            required=True,
            type=client_identifier,
            help="the credential presented at the service point",
        )
    grant.add_argument("--units", type=int, required=True, help="units to add (negative to withdraw)")
    grant.set_defaults(run=lambda args: asyncio.run(_grant(args)))
    show.set_defaults(run=lambda args: asyncio.run(_show(args)))
    clients = commands.add_parser("client", help="API keys of client systems")
    client_actions = clients.add_subparsers(dest="client_command", required=True)
    create = client_actions.add_parser(
        "create",
        help="issue an API key for a client (and its topics, per_client layout); prints the key once",
    )
    create.add_argument("--client", required=True, help="client_id")
    create.set_defaults(run=lambda args: asyncio.run(_issue_key(args)))
    revoke = client_actions.add_parser("revoke", help="revoke an API key at once")
    revoke.add_argument(
        "--key-id", required=True, type=_key_id, help="the id printed when the key was issued"
    )
    revoke.set_defaults(run=lambda args: asyncio.run(_revoke_key(args)))
    history = commands.add_parser("history", help="print an order's status events in sequence, one per line")
    history.add_argument("--client", required=True, type=client_identifier, help="client_id")
    history.add_argument("--order", required=True, type=client_identifier, help="order_id")
    history.set_defaults(run=lambda args: asyncio.run(_history(args)))
    anomalies = commands.add_parser("anomalies", help="print the newest recorded anomalies as JSON lines")
    anomalies.add_argument("--count", type=positive_int, default=20, help="how many (default 20)")
    anomalies.set_defaults(run=lambda args: asyncio.run(_anomalies(args)))


async def _grant(args: argparse.Namespace) -> int:
    async with connect_with(load_settings()) as redis:
        balance = await EntitlementStore(redis).grant(args.client, args.credential, args.units)
    print(json.dumps({"client_id": args.client, "credential": args.credential, "balance": balance}))
    return 0


async def _show(args: argparse.Namespace) -> int:
    async with connect_with(load_settings()) as redis:
        balance = await EntitlementStore(redis).balance(args.client, args.credential)
    print(json.dumps({"client_id": args.client, "credential": args.credential, "balance": balance}))
    return 0 if balance is not None else 1


async def _history(args: argparse.Namespace) -> int:
    async with connect_with(load_settings()) as redis:
        store, start = OrderStore(redis), 0
        while True:
            exists, events = await store.history(args.client, args.order, start=start, count=500)
            if not exists:
                return _fail(f"no order {args.order!r} of client {args.client!r}")
            for event in events:
                print(event.decode())
            if len(events) < 500:
                return 0
            start += len(events)


async def _anomalies(args: argparse.Namespace) -> int:
    async with connect_with(load_settings()) as redis:
        for record in await OrderStore(redis).recent_anomalies(args.count):
            print(json.dumps(record))
    return 0


_client_id: TypeAdapter[str] = TypeAdapter(ClientId)


def _fail(message: str) -> int:
    print(f"orders: {message}", file=sys.stderr)
    return 2


async def _issue_key(args: argparse.Namespace) -> int:
    try:
        client_id = _client_id.validate_python(args.client)
    except ValidationError:
        return _fail(
            f"invalid client id {args.client!r}: 1-64 letters, digits and '-', not starting with '-'"
        )
    settings = load_settings()
    try:
        # Topics first: a key is only worth issuing once the client can reach the service.
        topics = await ensure_client_topics(settings, client_id)
    except (KafkaError, OSError, RuntimeError) as error:
        return _fail(f"cannot create the topics of {client_id}: {error}")
    async with connect_with(settings) as redis:
        try:
            issued = await ApiKeyStore(redis).issue(
                client_id, utc_now(), limit=settings.max_api_keys_per_client
            )
        except LimitReached as error:
            return _fail(f"{error}: revoke one first (ORDERS_MAX_API_KEYS_PER_CLIENT)")
    created = {"client_id": issued.client_id, "key_id": issued.key_id, "api_key": issued.token}
    print(json.dumps(created | ({"topics": topics} if topics else {})))
    return 0


async def _revoke_key(args: argparse.Namespace) -> int:
    async with connect_with(load_settings()) as redis:
        found = await ApiKeyStore(redis).revoke(args.key_id, utc_now())
    print(json.dumps({"key_id": args.key_id, "revoked": found}))
    return 0 if found else 1
