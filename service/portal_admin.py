"""`orders portal link`: a single-use portal link for a client, issued straight against Redis.

Outside the portal package, whose import loads FastAPI, Jinja2 and every page (most of a second): every
`orders` command builds its parser from this module, and only `orders portal link` needs the portal."""

import argparse
import asyncio
import json

from pydantic import TypeAdapter, ValidationError

from contracts.base import ClientId
from service.admin import positive_int
from service.clock import utc_now
from service.config import ApiSettings
from service.store.client import connect_with
from service.store.portal_sessions import PortalSessions

_CLIENT_ID: TypeAdapter[str] = TypeAdapter(ClientId)


def _client_id(value: str) -> str:
    try:
        return _CLIENT_ID.validate_python(value)
    except ValidationError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a client id (1-64 letters, digits and '-', not starting with '-')"
        ) from None


def add_portal_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """`orders portal link --client C [--ttl SECONDS]`."""
    portal = commands.add_parser("portal", help="the portal served by `orders api`")
    actions = portal.add_subparsers(dest="portal_command", required=True)
    link = actions.add_parser("link", help="print a single-use link that opens the portal for a client")
    link.add_argument("--client", required=True, type=_client_id, help="client_id")
    link.add_argument(
        "--ttl",
        type=positive_int,
        default=None,
        help="seconds the link may be opened (at most ORDERS_PORTAL_LINK_TTL_SECONDS, its default)",
    )
    link.set_defaults(run=lambda args: asyncio.run(_link(args)))


async def _link(args: argparse.Namespace) -> int:
    from service.api.portal.access import link_ttl, portal_url  # noqa: PLC0415 - see the module's docstring

    settings = ApiSettings()
    ttl = link_ttl(settings, args.ttl)
    async with connect_with(settings) as redis:
        sessions = PortalSessions(redis, settings.portal_session_ttl_seconds)
        link = await sessions.issue_link(args.client, ttl, utc_now())
    url = portal_url(settings, link.token)
    print(json.dumps({"client_id": args.client, "url": url, "expires_at": link.expires_at.isoformat()}))
    return 0
