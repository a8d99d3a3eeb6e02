"""The operator's pages: dead letters, anomalies, endpoints across clients, the key figures as charts."""

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from service.api.dependencies import (
    DeliveriesDep,
    EndpointsDep,
    OrdersDep,
    SettingsDep,
)
from service.api.portal.charts import bar_chart, line_chart
from service.api.portal.common import (
    OperatorSession,
    page,
    pages,
    portal_state_of,
)
from service.api.portal.figures import RATES, consumer_lag, recent_dead_letters
from service.clock import utc_now
from service.store.webhook_endpoints import EndpointState


@pages.get("/operator")
async def operator_home(
    request: Request,
    session: OperatorSession,
    settings: SettingsDep,
    orders: OrdersDep,
    endpoints: EndpointsDep,
    deliveries: DeliveriesDep,
) -> HTMLResponse:
    """Dead letters decoded, anomalies, and every client's endpoints by state."""
    kafka_error = None
    try:
        letters = await recent_dead_letters(settings)
    except Exception as error:  # Kafka unreachable or slow: say so, show the rest
        letters, kafka_error = [], type(error).__name__
    everything = await endpoints.get_many(await endpoints.all_ids())
    now = utc_now()
    by_state: dict[str, list[Any]] = {state.value: [] for state in EndpointState}
    for endpoint in sorted(everything, key=lambda e: (e.client_id, e.endpoint_id)):
        by_state[endpoint.effective_state(now).value].append(endpoint)
    backlogs = await deliveries.backlogs([e.endpoint_id for e in everything])
    return page(
        request,
        "operator.html",
        session,
        letters=letters,
        kafka_error=kafka_error,
        anomalies=await orders.recent_anomalies(50),
        by_state=by_state,
        backlogs=backlogs,
    )


@pages.get("/operator/metrics")
async def operator_metrics(request: Request, session: OperatorSession, settings: SettingsDep) -> HTMLResponse:
    """The key figures as charts: consumer lag (from Kafka), rates between readings of this page, and the
    webhook attempts' latency histogram (from the metrics the processes expose)."""
    sampler = portal_state_of(request).sampler
    reading = await sampler.read()
    lag_error = None
    try:
        lag = await consumer_lag(settings)
        lag_chart = bar_chart("Consumer lag (records not yet read)", list(lag.items()))
    except Exception as error:  # Kafka unreachable or slow
        lag_chart, lag_error = None, type(error).__name__
    rates = {name: line_chart(RATES[name], points, "/s") for name, points in sampler.rates().items()}
    buckets = sorted(reading.latency_buckets.items(), key=lambda b: float(b[0]))
    per_bucket, previous = [], 0.0
    for le, cumulative in buckets:
        per_bucket.append((f"≤ {le} s" if le != "+Inf" else "slower", cumulative - previous))
        previous = cumulative
    return page(
        request,
        "metrics.html",
        session,
        lag_error=lag_error,
        lag_chart=lag_chart,
        rates=rates,
        readings=len(sampler.readings),
        totals=reading.totals,
        latency=bar_chart("Webhook attempt latency (attempts per bucket)", per_bucket),
        sources=reading.sources,
    )
