"""Command outcomes per client and command_id, kept as long as the command_id's idempotency claim."""

from collections.abc import Sequence
from typing import Literal

from redis.asyncio import Redis

from service.domain.command_outcomes import CommandOutcome, OutcomeRecord
from service.domain.local_effects import RecordCommandOutcome
from service.store.keys import command_claim_key, command_outcome_key
from service.store.scripts import Call, LuaScript

Rule = Literal["first", "holder", "unanswered"]
"""When `record_command_outcome.lua` records an outcome; its header says what each rule means."""


class CommandOutcomeStore:
    """Reads and records outcomes; each record is one atomic step on the command_id's hash tag."""

    def __init__(self, redis: "Redis", retention_seconds: int = 7 * 24 * 3600) -> None:
        self._redis = redis
        self._retention_ms = retention_seconds * 1000
        self._record = LuaScript("record_command_outcome")

    async def load_scripts(self) -> None:
        """Load the Lua script up front."""
        await self._record.load(self._redis)

    async def get(self, client_id: str, command_id: str) -> CommandOutcome | None:
        """The client's command's outcome, or None if there is none (or it is another client's)."""
        raw = await self._redis.get(command_outcome_key(client_id, command_id))
        if raw is None:
            return None
        outcome = CommandOutcome.model_validate_json(raw)
        # Keys cannot collide (see `service.store.keys`); checking the owner as well costs nothing.
        return outcome if outcome.client_id == client_id else None

    async def record_accepted(self, outcome: OutcomeRecord) -> bool:
        """Record a command the API published, unless it has an outcome already; whether it was recorded."""
        [recorded] = await self._run([("first", "", outcome)])
        return recorded

    async def record_decided(self, effects: Sequence[RecordCommandOutcome]) -> list[bool]:
        """Record what the service decided for each command that holds its command_id (the outcome of a
        command rejected for reusing one is not recorded); one round trip."""
        return await self._run([("holder", e.fingerprint, e.outcome) for e in effects])

    async def record_unanswered_rejections(self, outcomes: Sequence[OutcomeRecord]) -> list[bool]:
        """Record rejections decided before their commands reached an order (INVALID_COMMAND while decoding),
        each only if its command has no outcome yet or only `accepted`; whether each was recorded."""
        return await self._run([("unanswered", "", outcome) for outcome in outcomes])

    async def _run(self, records: Sequence[tuple[Rule, str, OutcomeRecord]]) -> list[bool]:
        calls: list[Call] = [
            (
                [
                    command_claim_key(outcome.client_id, outcome.command_id),
                    command_outcome_key(outcome.client_id, outcome.command_id),
                ],
                [rule, fingerprint, outcome.to_json(), self._retention_ms],
            )
            for rule, fingerprint, outcome in records
        ]
        return [reply == 1 for reply in await self._record.run_many(self._redis, calls)]
