"""Give a raw-record handler the payload annotation that FastStream's AsyncAPI generator reads."""

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[Any], Awaitable[None]]


def documented_payload(payload: Any) -> Callable[[Handler], Handler]:
    """Annotate a handler's body as `payload` for the AsyncAPI document only.

    The consumers validate each record themselves so that one bad record becomes a dead letter instead of
    failing its whole batch; the broker therefore runs without FastDepends (`apply_types=False`) and hands
    the handler raw records. FastStream still builds the message schema from the handler's signature, so
    the wrapper exposes the contract type there.
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(body: Any) -> None:
            await handler(body)

        parameter = inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=payload)
        wrapper.__signature__ = inspect.Signature([parameter], return_annotation=None)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {"body": payload, "return": None}
        return wrapper

    return decorate
