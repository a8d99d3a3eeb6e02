"""What became of a command: accepted, applied or rejected, for clients that follow their commands by HTTP."""

from fastapi import APIRouter
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException

from contracts.base import ClientIdentifier
from service.api.dependencies import ClientIdDep, OutcomesDep
from service.api.problems import AUTHENTICATED
from service.domain.command_outcomes import CommandOutcome

command_outcomes = APIRouter(prefix="/v1/commands", tags=["commands"], responses=AUTHENTICATED)


_COMMAND_ID: TypeAdapter[str] = TypeAdapter(ClientIdentifier)


# `:path`, so that a path with a `/` is answered like any unknown command (a command_id has none).
@command_outcomes.get("/{command_id:path}", response_model=CommandOutcome)
async def get_command_outcome(
    command_id: str, client_id: ClientIdDep, outcomes: OutcomesDep
) -> CommandOutcome:
    """The command's outcome; another client's command_id is answered like an unknown one."""
    try:
        _COMMAND_ID.validate_python(command_id)
    except ValidationError:
        raise HTTPException(404, "no such command") from None
    outcome = await outcomes.get(client_id, command_id)
    if outcome is None:
        raise HTTPException(404, "no such command")
    return outcome
