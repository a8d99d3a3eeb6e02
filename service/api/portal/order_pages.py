"""A client's order and command pages: the ONE Order structure, the history as a timeline, outcomes."""

import json
from typing import Any, cast

from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException

from contracts.limits import EVENTS_PER_PAGE
from service.api.command_outcomes import get_command_outcome
from service.api.dependencies import (
    OrdersDep,
    OutcomesDep,
)
from service.api.portal.charts import Step, timeline
from service.api.portal.common import (
    ClientSession,
    page,
    pages,
    valid_id,
)
from service.api.portal.figures import catalog
from service.api.routes import details


@pages.get("/events")
async def event_catalog(request: Request, session: ClientSession) -> HTMLResponse:
    """Each webhook event type with its schema and an example, from the contract's schemas."""
    return page(request, "events.html", session, catalog=catalog())


@pages.get("/orders")
async def order_page(
    request: Request, session: ClientSession, orders: OrdersDep, order_id: str = ""
) -> HTMLResponse:
    """An order's ONE Order structure and its history as a timeline; another client's order is missing."""
    client_id = cast(str, session.client_id)
    order = await orders.get(client_id, order_id) if order_id and valid_id(order_id) else None
    if order is None:
        status = 404 if order_id else 200
        return page(request, "order.html", session, status, order_id=order_id, order=None)
    events: list[dict[str, Any]] = []
    while True:  # the history in pages of the API's size, as GET /v1/orders/{id}/events reads it
        _, batch = await orders.history(client_id, order_id, start=len(events), count=EVENTS_PER_PAGE)
        events += [json.loads(e) for e in batch]
        if len(batch) < EVENTS_PER_PAGE:
            break
    steps = [Step(e["sequence"], e["status_name"], e["occurred_at"], e.get("reason")) for e in events]
    view = details(order)
    return page(
        request,
        "order.html",
        session,
        order_id=order_id,
        order=view,
        structure=json.dumps(view.order.model_dump(mode="json"), indent=2),
        timeline=timeline(steps),
        events=events,
    )


@pages.get("/commands")
async def command_page(
    request: Request, session: ClientSession, outcomes: OutcomesDep, command_id: str = ""
) -> HTMLResponse:
    """What became of a command, by the API's own route."""
    outcome = None
    if command_id:
        try:
            outcome = await get_command_outcome(command_id, cast(str, session.client_id), outcomes)
        except HTTPException:
            outcome = None
    status = 404 if command_id and outcome is None else 200
    shown = json.dumps(outcome.model_dump(mode="json"), indent=2) if outcome else None
    return page(request, "command.html", session, status, command_id=command_id, outcome=outcome, shown=shown)
