"""Announcing an endpoint's state changes to its client: an `endpoint_state_changed` webhook to the client's
other endpoints that subscribe to it, beside the log line and metric the operators watch.

The endpoint that changed is not told (a paused or disabled endpoint takes no deliveries; an enabled one
knows). The announcement is queued like a command rejection, as a delivery unit of its own, so it is
retried, signed and logged like any delivery and holds back no order's events.
"""

import logging
import uuid
from datetime import datetime

from contracts.events import EndpointStateChanged
from service.store.webhook_deliveries import DeliveryStore, QueuedEvent
from service.store.webhook_endpoints import Endpoint, EndpointState, EndpointStore

log = logging.getLogger(__name__)


async def announce_state_change(
    endpoints: EndpointStore,
    deliveries: DeliveryStore,
    endpoint: Endpoint,
    *,
    state: EndpointState,
    reason: str | None,
    now: datetime,
    paused_until: datetime | None = None,
) -> EndpointStateChanged:
    """Queue the change of `endpoint` for the client's other endpoints subscribed to it; returns the event."""
    event = EndpointStateChanged(
        event_id=str(uuid.uuid4()),
        client_id=endpoint.client_id,
        endpoint_id=endpoint.endpoint_id,
        url=endpoint.url,
        state=state.value,
        reason=reason,
        paused_until=paused_until,
        occurred_at=now,
    )
    body = event.model_dump_json().encode()
    told = [
        other
        for other in await endpoints.for_client(endpoint.client_id)
        if other.state is not EndpointState.DISABLED and other.wants(event)
    ]
    await deliveries.enqueue(
        [QueuedEvent.of(other.endpoint_id, event, body) for other in told],
        now,
    )
    log.info(
        "relay.endpoint_state_changed",
        extra={
            "endpoint_id": endpoint.endpoint_id,
            "client_id": endpoint.client_id,
            "state": state.value,
            "reason": reason,
            "announced_to": len(told),
        },
    )
    return event
