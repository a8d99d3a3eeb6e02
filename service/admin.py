"""Admin commands: entitlement balances and the anomaly log, straight against Redis."""

import argparse
import asyncio
import json

from redis.asyncio import Redis

from service.config import load_settings
from service.store.entitlements import EntitlementStore
from service.store.orders import OrderStore


def add_admin_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """`orders entitlements grant|show` and `orders anomalies`."""
    entitlements = commands.add_parser(
        "entitlements", help="walk-in entitlement balances per client and credential"
    )
    actions = entitlements.add_subparsers(dest="entitlements_command", required=True)
    grant = actions.add_parser(
        "grant", help="add units to a credential's balance (creates it); prints the balance"
    )
    show = actions.add_parser("show", help="print a credential's balance")
    for parser in (grant, show):
        parser.add_argument("--client", required=True, help="client_id")
        parser.add_argument(
            "--credential", required=True, help="the credential presented at the service point"
        )
    grant.add_argument("--units", type=int, required=True, help="units to add (negative to withdraw)")
    grant.set_defaults(run=lambda args: asyncio.run(_grant(args)))
    show.set_defaults(run=lambda args: asyncio.run(_show(args)))
    anomalies = commands.add_parser("anomalies", help="print the newest recorded anomalies as JSON lines")
    anomalies.add_argument("--count", type=int, default=20)
    anomalies.set_defaults(run=lambda args: asyncio.run(_anomalies(args)))


async def _grant(args: argparse.Namespace) -> int:
    async with Redis.from_url(load_settings().redis_url) as redis:
        balance = await EntitlementStore(redis).grant(args.client, args.credential, args.units)
    print(json.dumps({"client_id": args.client, "credential": args.credential, "balance": balance}))
    return 0


async def _show(args: argparse.Namespace) -> int:
    async with Redis.from_url(load_settings().redis_url) as redis:
        balance = await EntitlementStore(redis).balance(args.client, args.credential)
    print(json.dumps({"client_id": args.client, "credential": args.credential, "balance": balance}))
    return 0 if balance is not None else 1


async def _anomalies(args: argparse.Namespace) -> int:
    async with Redis.from_url(load_settings().redis_url) as redis:
        for record in await OrderStore(redis).recent_anomalies(args.count):
            print(json.dumps(record))
    return 0
