"""How every process runs its main coroutine: on uvloop's event loop where it is installed."""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on uvloop (libuv's loop: cheaper per socket write and callback than the stdlib's
    selector loop, which the relay's profile showed as a large share of its CPU); the stdlib loop where
    uvloop is not available (it has no Windows build)."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:  # pragma: no cover - installed everywhere the project runs
        return asyncio.run(main)
    return uvloop.run(main)
