"""Request bodies read strictly: JSON that parsers would read differently is refused before any route.

A JSON object that names a key twice is refused rather than resolved to its last value (a second
`client_id` or `order_item_ids` that another reader would take first), and so is a string that is not
Unicode (an unpaired surrogate escape such as `\\ud800`, which cannot be stored or published). One middleware
for every route, so that a new route cannot forget it.
"""

import email.message
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response

from service.api.problems import problem

_UNPAIRED_SURROGATE = re.compile("[\ud800-\udfff]")

Location = list[str | int]


class _Members(list[tuple[str, Any]]):
    """A JSON object as written: its members in order, repeated keys included."""


def _read(body: bytes) -> Any:
    return json.loads(body, object_pairs_hook=_Members)


def ambiguity(body: bytes) -> tuple[Location, str, str] | None:
    """Where `body` is ambiguous JSON, with a message and an error type; None when it is not, or is not
    JSON at all (the route's own parsing answers that)."""
    try:
        document = _read(body)
    except (ValueError, RecursionError):
        return None
    pending: list[tuple[Location, Any]] = [(["body"], document)]
    while pending:  # iterative: a document as deep as the parser allows must not exhaust the stack
        location, value = pending.pop()
        if isinstance(value, _Members):
            seen: set[str] = set()
            for key, member in value:
                if _UNPAIRED_SURROGATE.search(key):
                    return location, "a key is not valid Unicode (an unpaired surrogate)", "string_unicode"
                if key in seen:
                    return [*location, key], "the key appears more than once in its object", "duplicate_key"
                seen.add(key)
                pending.append(([*location, key], member))
        elif isinstance(value, list):
            pending.extend(([*location, index], member) for index, member in enumerate(value))
        elif isinstance(value, str) and _UNPAIRED_SURROGATE.search(value):
            return location, "the string is not valid Unicode (an unpaired surrogate)", "string_unicode"
    return None


def _is_json(content_type: str | None) -> bool:
    # The same choice FastAPI makes: a body without a content type, or with a JSON one, is read as JSON.
    if content_type is None:
        return True
    header = email.message.Message()
    header["content-type"] = content_type
    subtype = header.get_content_subtype()
    return header.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


async def refuse_ambiguous_json(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Middleware: 422, as problem details naming where, for a body that is ambiguous JSON."""
    if request.method in ("POST", "PUT", "PATCH") and _is_json(request.headers.get("content-type")):
        body = await request.body()  # Starlette hands the same bytes on to the route
        found = ambiguity(body) if body else None
        if found is not None:
            location, message, kind = found
            errors = [{"loc": location, "msg": message, "type": kind}]
            return problem(422, "the request does not match the contract", errors=errors)
    return await call_next(request)
