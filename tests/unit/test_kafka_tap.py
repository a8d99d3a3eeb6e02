"""The test tap's waits end with the cause when its reader fails, instead of running to their timeout."""

import asyncio
from typing import Any

import pytest

from testkit.kafka_tap import TopicTap


class _BrokenConsumer:
    """A consumer whose first poll returns nothing and whose second fails, as a lost connection would."""

    def __init__(self) -> None:
        self.polls = 0

    async def getmany(self, timeout_ms: int) -> dict[Any, Any]:
        self.polls += 1
        if self.polls == 1:
            return {}
        raise ConnectionError("the broker went away")


async def test_a_wait_raises_the_readers_error_instead_of_timing_out() -> None:
    tap = TopicTap("127.0.0.1:9", ["orders.status-changed"])
    tap._consumer = _BrokenConsumer()  # started without a broker (aiokafka is untyped: any object fits)
    reader = asyncio.create_task(tap._read())

    with pytest.raises(RuntimeError, match="stopped reading") as raised:
        await tap.wait_for(lambda: None, timeout=10)

    assert isinstance(raised.value.__cause__, ConnectionError)
    with pytest.raises(ConnectionError):
        await reader
