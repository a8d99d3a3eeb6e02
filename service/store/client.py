"""The Redis client: commands packed by hiredis; on the hot path, one time limit per batch, not per reply."""

from typing import Any, cast

import hiredis
from redis.asyncio import Connection, ConnectionPool, Redis, RedisCluster, SSLConnection
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import DataError

from service.config import Settings


class _HiredisPacking:
    """Packs commands with hiredis (in C), as redis-py's synchronous client already does.

    redis-py's asyncio connection packs every command in Python: with a dozen commands per order that was
    the largest single cost of the service (about 15% of its CPU).
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError as error:
            raise DataError(str(error)) from error

    def pack_commands(self, commands: Any) -> list[bytes]:
        return [b"".join(self.pack_command(*command)[0] for command in commands)]


class HiredisPackingConnection(_HiredisPacking, Connection):
    """A plain TCP connection that packs with hiredis."""


class HiredisPackingSSLConnection(_HiredisPacking, SSLConnection):
    """A TLS connection (`rediss://`) that packs with hiredis."""


def _packing(connection_class: type[AbstractConnection]) -> type[Connection]:
    """The hiredis-packing class for what redis-py chose from the URL (TLS or not)."""
    if issubclass(connection_class, SSLConnection):
        return HiredisPackingSSLConnection
    return HiredisPackingConnection


def connect_with(settings: Settings, *, reply_timeout: float | None = 5.0) -> Redis:
    """A client of the Redis that `settings` name (`REDIS_URL`, `ORDERS_REDIS_CLUSTER`)."""
    return connect(
        settings.redis_url.get_secret_value(), reply_timeout=reply_timeout, cluster=settings.redis_cluster
    )


def connect(url: str, *, reply_timeout: float | None = 5.0, cluster: bool = False) -> Redis:
    """A client for `url`. `reply_timeout=None` drops redis-py's timer per reply (about 10% of the service's
    CPU); the caller must then bound its calls itself, as the order processor does per batch.

    `cluster`: `url` names one node of a Redis Cluster. Every atomic step touches one hash tag, so one slot
    (see `service.store.keys`), and pipelines of several slots are split per node by the cluster client.
    """
    if cluster:
        client = RedisCluster.from_url(url, socket_timeout=reply_timeout)
        # The cluster client takes no connection class (it always makes redis-py's own, TLS or not): set
        # the packing one where its nodes are made, for the startup nodes and those it discovers.
        packing = _packing(client.nodes_manager.connection_kwargs["connection_class"])
        client.nodes_manager.connection_kwargs["connection_class"] = packing
        for node in client.nodes_manager.startup_nodes.values():
            node.connection_class = packing
        # Same commands, scripts and non-transactional pipelines as a single-node client, so the stores
        # take either; typed as the single-node client they are written against.
        return cast(Redis, client)
    # From the URL's pool, whose class says TLS or not (a class passed to `Redis.from_url` is overridden for
    # `rediss://`, which lost the packing).
    pool = ConnectionPool.from_url(url, socket_timeout=reply_timeout)
    pool.connection_class = _packing(pool.connection_class)
    return Redis.from_pool(pool)
