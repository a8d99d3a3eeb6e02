"""Waiting for state that announces itself by no message (a counter, a stored value)."""

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

POLL_SECONDS = 0.01


@overload
async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 20.0) -> T: ...


@overload
async def eventually(probe: Callable[[], T | None], timeout: float = 20.0) -> T: ...


async def eventually(probe: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Re-check `probe` (plain or async) until it returns something truthy; fail after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            result = probe()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(POLL_SECONDS)


def counter(name: str, **labels: str) -> float:
    """The current value of a Prometheus counter of this process."""
    from prometheus_client import REGISTRY  # noqa: PLC0415

    return REGISTRY.get_sample_value(name, labels) or 0.0
