"""What became of a command: accepted, applied or rejected, for clients that follow their commands by HTTP."""

from fastapi import APIRouter
from starlette.exceptions import HTTPException

from service.api.dependencies import ClientIdDep, OutcomesDep
from service.domain.command_outcomes import CommandOutcome

command_outcomes = APIRouter(prefix="/v1/commands", tags=["commands"])


# `:path`, so that a command_id with a `/` (the contract's identifiers allow it) is reachable too.
@command_outcomes.get("/{command_id:path}", response_model=CommandOutcome)
async def get_command_outcome(
    command_id: str, client_id: ClientIdDep, outcomes: OutcomesDep
) -> CommandOutcome:
    """The command's outcome; another client's command_id is answered like an unknown one."""
    outcome = await outcomes.get(client_id, command_id)
    if outcome is None:
        raise HTTPException(404, "no such command")
    return outcome
