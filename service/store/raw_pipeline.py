"""The order processor's pipelines, without redis-py's per-command layers.

A batch of a few hundred orders sends thousands of commands. Through redis-py's pipeline each command is
queued with its options, packed, and read back through four layers (the pipeline's, the client's and the
connection's `parse_response`, then the parser) plus a response callback looked up by name: about a sixth
of the processor's CPU. Here the commands are packed by hiredis in one call each and their replies taken
straight from the connection's hiredis reader, as Redis sent them (in the protocol redis-py negotiated:
`hash_items` reads an `HGETALL` either way; `SET ... NX` gives `b"OK"` or None; errors are redis-py's
exception instances).

Both modes take this path. On a Redis Cluster the commands go to the node that serves their key's slot,
one pipeline per node, concurrently. A redirection (the slots moved) refreshes the client's map of the
cluster and fails the batch, which the caller runs again; every hot-path step is idempotent for that
reason already (see `service.consumers.processor`).
"""

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import hiredis
from redis._parsers.hiredis import NOT_ENOUGH_DATA
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

Arg = bytes | str | int | float

_REDIRECTIONS = (MovedError, AskError, TryAgainError, ClusterDownError)


def hash_items(reply: Any) -> list[tuple[bytes, bytes]]:
    """The field-value pairs of an `HGETALL` reply: a map under RESP3 (redis-py's default), a flat list
    under RESP2."""
    if isinstance(reply, dict):
        return list(reply.items())
    return list(zip(reply[::2], reply[1::2], strict=True))


class RawPipeline:
    """Commands queued with the key that routes them, sent in one round trip per node."""

    __slots__ = ("_commands", "_keys", "_redis")

    def __init__(self, redis: "Redis") -> None:
        self._redis = redis
        self._commands: list[bytes] = []
        self._keys: list[str] = []

    def __len__(self) -> int:
        return len(self._commands)

    def command(self, key: str, *args: Arg) -> None:
        """Queue one command; `key` is the key it works on (on a Cluster, its slot picks the node)."""
        self._commands.append(hiredis.pack_command(args))  # type: ignore[arg-type]  # stub: a 1-tuple
        self._keys.append(key)

    async def execute(self, *, raise_on_error: bool = True) -> list[Any]:
        """Send everything queued and return the replies in order. With `raise_on_error`, the first error
        reply is raised once every reply was read (the connection stays usable); without, error replies
        are returned in their places as exceptions."""
        if not self._commands:
            return []
        if isinstance(self._redis, RedisCluster):
            replies = await _on_cluster(self._redis, self._commands, self._keys)
        else:
            replies = await _on_node_pool(self._redis, self._commands)
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, ResponseError):
                    raise reply
        return replies


async def _on_node_pool(redis: "Redis", commands: Sequence[bytes]) -> list[Any]:
    pool = redis.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        return await _round_trip(connection, commands)
    finally:
        await pool.release(connection)


async def _on_cluster(cluster: RedisCluster, commands: Sequence[bytes], keys: Sequence[str]) -> list[Any]:
    """One pipeline per node that holds a slot of `keys`, run at once; replies put back in order."""
    await cluster.initialize()  # a no-op once the client has read the slot map
    nodes: dict[str, tuple[Any, list[int]]] = {}
    for position, key in enumerate(keys):
        node = cluster.nodes_manager.get_node_from_slot(cluster.keyslot(key))
        nodes.setdefault(node.name, (node, []))[1].append(position)
    results = await asyncio.gather(
        *(_on_cluster_node(node, [commands[p] for p in positions]) for node, positions in nodes.values())
    )
    replies: list[Any] = [None] * len(commands)
    redirected = False
    for (_, positions), node_replies in zip(nodes.values(), results, strict=True):
        for position, reply in zip(positions, node_replies, strict=True):
            replies[position] = reply
            redirected = redirected or isinstance(reply, _REDIRECTIONS)
    if redirected:
        # The slots moved (resharding, failover): learn the new map; the caller runs the batch again.
        await cluster.nodes_manager.initialize()
        raise ClusterDownError("the cluster's slots moved during a batch; refreshed the slot map")
    return replies


async def _on_cluster_node(node: Any, commands: Sequence[bytes]) -> list[Any]:
    connection = node.acquire_connection()
    try:
        return await _round_trip(connection, commands)
    finally:
        node.release(connection)


async def _round_trip(connection: AbstractConnection, commands: Sequence[bytes]) -> list[Any]:
    """Write every command, read as many replies. Anything unexpected (an I/O error, a cancellation by the
    batch's time limit) drops the connection: replies may still be on their way on it."""
    try:
        await connection.send_packed_command(commands)
        parser = cast(Any, connection)._parser
        reader: hiredis.Reader = parser._reader
        replies: list[Any] = []
        expected = len(commands)
        while len(replies) < expected:
            reply = reader.gets(False)
            if reply is NOT_ENOUGH_DATA:
                await parser.read_from_socket()
                continue
            if isinstance(reply, RedisConnectionError):  # e.g. LOADING: the server is not serving yet
                raise reply
            replies.append(reply)
        return replies
    except BaseException:
        await connection.disconnect(nowait=True)
        raise
