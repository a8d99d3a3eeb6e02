"""Lua scripts kept as files, run by SHA in pipelines, and reloaded if Redis forgot them (a restart)."""

import asyncio
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import NoScriptError

from service.store.raw_pipeline import RawPipeline

Call = tuple[Sequence[str], Sequence[bytes | str | int]]
"""One invocation: its keys and its arguments."""


class LuaScript:
    """A named script from `service/store/lua/`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = (
            resources.files("service.store").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
        )
        self._sha: str | None = None

    @property
    def sha(self) -> str | None:
        """The script's SHA once loaded."""
        return self._sha

    async def load(self, redis: "Redis") -> str:
        """Load the script now, so that the first batch pays no extra round trip; returns its SHA."""
        self._sha = await redis.script_load(self.source)
        return self._sha

    async def run_many(self, redis: "Redis", calls: Sequence[Call]) -> list[Any]:
        """Run the script once per call, all in one round trip; results in call order."""
        if not calls:
            return []
        if self._sha is None:
            self._sha = await redis.script_load(self.source)
        try:
            return await self._pipeline(redis, calls)
        except NoScriptError:
            self._sha = await redis.script_load(self.source)
            return await self._pipeline(redis, calls)

    async def run(self, redis: "Redis", keys: Sequence[str], args: Sequence[bytes | str | int]) -> Any:
        """Run the script once."""
        [result] = await self.run_many(redis, [(keys, args)])
        return result

    async def _pipeline(self, redis: "Redis", calls: Sequence[Call]) -> list[Any]:
        pipe = RawPipeline(redis)
        for keys, args in calls:
            pipe.command(keys[0], "EVALSHA", self._sha or "", len(keys), *keys, *args)
        return await pipe.execute()


class Coalesced:
    """Single calls of a script from many concurrent tasks, sent together, with up to `pipelines` round trips
    in flight: a call goes at once while fewer are, and those made while all are in flight go together in
    the next one, in one pipeline.

    Two by default: with one, a call made just after a pipeline left waited for its whole round trip before
    its own began (the relay's slots waited so for their settles, idle a tenth of the time at saturation).
    Each caller awaits its own call's answer, so none relies on the order of calls across pipelines.

    Each caller gets its own result or error (one failing call does not fail the others in its pipeline).
    """

    def __init__(self, script: LuaScript, redis: "Redis", pipelines: int = 2) -> None:
        self._script = script
        self._redis = redis
        self._pipelines = pipelines
        self._waiting: list[tuple[Call, asyncio.Future[Any]]] = []
        self._senders: set[asyncio.Task[None]] = set()

    async def run(self, keys: Sequence[str], args: Sequence[bytes | str | int]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(((keys, args), future))
        if len(self._senders) < self._pipelines:
            self._senders.add(asyncio.create_task(self._send()))
        return await future

    async def _send(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    results = await self._run_each([call for call, _ in batch])
                except Exception as error:  # the connection failed: every call of the batch failed
                    results = [error] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # its caller gave up (cancelled)
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            # In the step that found nothing waiting, not in a done callback a step later: the callers it
            # answered run before that, and a call one of them makes at once must start a sender of its own.
            self._senders.discard(asyncio.current_task())

    async def _run_each(self, calls: list[Call]) -> list[Any]:
        sha = self._script.sha or await self._script.load(self._redis)
        results = await self._pipeline(sha, calls)
        if any(isinstance(r, NoScriptError) for r in results):  # not run: safe to run again once loaded
            results = await self._pipeline(await self._script.load(self._redis), calls)
        return results

    async def _pipeline(self, sha: str, calls: list[Call]) -> list[Any]:
        if not isinstance(self._redis, RedisCluster):
            # Packed by hiredis and read straight off the connection: through redis-py's pipeline, packing
            # the relay's settles (thirty or so arguments each) took a fifth of its CPU.
            raw = RawPipeline(self._redis)
            for keys, args in calls:
                raw.command(keys[0], "EVALSHA", sha, len(keys), *keys, *args)
            return await raw.execute(raise_on_error=False)
        # On a Cluster, redis-py's pipeline: it follows a slot that moved, call by call, where `RawPipeline`
        # fails the whole batch (and here every caller of it).
        async with self._redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                queue_evalsha(pipe, sha, keys, args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        return results


def queue_evalsha(pipe: Any, sha: str | None, keys: Sequence[str], args: Sequence[bytes | str | int]) -> None:
    """Queue one EVALSHA on a pipeline. Through `execute_command`, because redis-py's cluster pipeline
    refuses its `evalsha` method, though it routes the command by its keys like any other."""
    pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
