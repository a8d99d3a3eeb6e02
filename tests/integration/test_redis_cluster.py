"""The key layout on a real Redis Cluster: one atomic step, one slot. The store's own tests
(`test_outbox_and_concurrency.py`, `test_retention.py`) run there too, through the `store_redis` fixture."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.exceptions import RedisClusterException, ResponseError

from service.devstack import EmbeddedRedisCluster, Endpoints
from service.store.client import HiredisPackingConnection, connect
from service.store.keys import order_keys
from service.store.scripts import LuaScript
from service.store.webhook_deliveries import DeliveryStore, QueuedEvent
from service.store.webhook_endpoints import EndpointState, EndpointStore


@pytest.fixture
async def cluster(redis_cluster_url: str) -> Redis:
    return connect(redis_cluster_url, cluster=True)


async def test_the_cluster_refuses_a_script_whose_keys_span_two_slots(cluster: Redis) -> None:
    """What makes the store's cluster runs meaningful: a step mixing two orders' keys would fail there."""
    commit = LuaScript("commit_transition")
    mixed = [order_keys("client-a", "ORD-A")[0], *order_keys("client-a", "ORD-B")[1:]]

    # The node serving the first key's slot refuses it (CROSSSLOT); redis-py's cluster client would refuse
    # it before sending.
    with pytest.raises((RedisClusterException, ResponseError), match=r"same key slot|hash to the same slot"):
        await commit.run(cluster, mixed, ["in-1", "f", "", "{}", "in-1", ""])

    [outcome] = await commit.run(
        cluster, order_keys("client-a", "ORD-A"), ["in-1", "f", "", "{}", "in-1", ""]
    )
    assert outcome == b"ok"
    await cluster.aclose()


async def test_the_relay_stores_work_on_the_cluster(cluster: Redis) -> None:
    """Endpoint changes (WATCH transactions on one endpoint's key) and a delivery's queue, claim and head,
    each within the endpoint's slot."""
    endpoints, deliveries = EndpointStore(cluster), DeliveryStore(cluster)
    now = datetime.now(UTC)
    endpoint = await endpoints.create("client-a", "https://hooks.example.com/orders", now)
    disabled = await endpoints.set_state(endpoint.endpoint_id, EndpointState.DISABLED, "test")
    _, secret = await endpoints.rotate_secret(endpoint.endpoint_id, now, timedelta(hours=1))
    event = QueuedEvent(
        endpoint_id=endpoint.endpoint_id, order_id="ORD-1", event_id="ev-1", sequence=1, body=b"{}"
    )
    await deliveries.enqueue([event, replace(event, order_id="ORD-2", event_id="ev-2")], now)
    claims = await deliveries.claim({endpoint.endpoint_id: 1}, now, 10)
    [head] = await deliveries.heads(claims)
    # The claim that returns its queues' heads (their keys named from a prefix, in the endpoint's slot).
    found = await deliveries.claim_checked({endpoint.endpoint_id: (5, None)}, now, 10, with_heads=True)
    [claimed] = found.values()

    assert disabled.state is EndpointState.DISABLED
    assert [h.event.event_id if h else None for h in claimed.heads] == ["ev-2"]
    [stored] = await endpoints.get_many([endpoint.endpoint_id])
    assert stored.secrets[0].secret == secret
    assert [c.queue_id for c in claims] == ["ORD-1"]
    assert head is not None and head.event.event_id == "ev-1"
    await cluster.aclose()


async def test_a_rejection_is_queued_claimed_and_settled_within_its_endpoints_slot(cluster: Redis) -> None:
    """A command rejection's own queue and the settled record are keys of the endpoint's slot too."""
    endpoints, deliveries = EndpointStore(cluster), DeliveryStore(cluster)
    now = datetime.now(UTC)
    endpoint = await endpoints.create("client-a", "https://hooks.example.com/orders", now)
    body = b'{"type": "command_rejected", "order_id": "ORD-1"}'
    event = QueuedEvent(
        endpoint_id=endpoint.endpoint_id, order_id="ORD-1", event_id="rj-1", sequence=None, body=body
    )
    await deliveries.enqueue([event], now)
    [claim] = await deliveries.claim({endpoint.endpoint_id: 5}, now, 10)
    [head] = await deliveries.heads([claim])
    assert head is not None and (head.event.order_id, head.event.sequence) == ("ORD-1", None)

    failures = await deliveries.settle(claim, head, "delivered", now, None, {"at": "x"}, (10, 60), 100)
    await deliveries.enqueue([event], now)

    assert failures is not None and failures.failures == 0
    assert await deliveries.backlogs([endpoint.endpoint_id]) == {endpoint.endpoint_id: 0}
    await endpoints.delete(endpoint)
    await cluster.aclose()


async def test_every_node_packs_commands_with_hiredis(cluster: Redis, stack: Endpoints) -> None:
    """The cluster client makes its nodes' connections itself: they pack with hiredis too, as the single
    node's do, pipelines across nodes included."""
    async with cluster.pipeline(transaction=False) as pipe:
        for n in range(20):  # keys of many slots, so of every node
            pipe.set(f"packing:{n}", n)
        assert await pipe.execute() == [True] * 20
    nodes = cluster.get_nodes()  # type: ignore[attr-defined]
    connections = [c for node in nodes for c in node._connections]
    assert len(nodes) > 1 and connections
    assert all(isinstance(c, HiredisPackingConnection) for c in connections)
    await cluster.aclose()
    single = connect(stack.redis_url)
    assert await single.ping()
    assert single.connection_pool.connection_class is HiredisPackingConnection
    await single.aclose()


def test_a_started_cluster_serves_on_every_node_at_once() -> None:
    """`EmbeddedRedisCluster.start` returns only once every node serves its slots: the nodes other than the
    first learn the slot map by gossip, and a batch sent to one that had not yet would fail (CLUSTERDOWN).
    Three fresh clusters, as the race showed in about one start in ten."""
    for _ in range(3):
        cluster = EmbeddedRedisCluster()
        try:
            cluster.start()
            for port in cluster.ports:
                with SyncRedis(port=port) as node:
                    assert node.cluster("INFO")["cluster_state"] == "ok", port
        finally:
            cluster.stop()
