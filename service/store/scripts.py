"""Lua scripts kept as files, run by SHA in pipelines, and reloaded if Redis forgot them (a restart)."""

from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

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

    async def load(self, redis: "Redis") -> None:
        """Load the script now, so that the first batch pays no extra round trip."""
        self._sha = await redis.script_load(self.source)

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
        async with redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(self._sha, len(keys), *keys, *args)  # type: ignore[arg-type]
            return await pipe.execute()
