"""A DNS stand-in for the relay's resolver: scripted answers per name, every lookup recorded."""

import socket
from collections.abc import Sequence

from aiohttp.abc import AbstractResolver, ResolveResult


class StubDns(AbstractResolver):
    """Answers each lookup of a name with the next of its scripted answers (the last one repeats), as a
    rebinding DNS server with a TTL of zero would; a name with no script does not resolve."""

    def __init__(self, answers: dict[str, Sequence[Sequence[str]]] | None = None) -> None:
        self.answers: dict[str, list[list[str]]] = {
            name: [list(answer) for answer in script] for name, script in (answers or {}).items()
        }
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        script = self.answers.get(host)
        if not script:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        addresses = script.pop(0) if len(script) > 1 else script[0]
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=socket.IPPROTO_TCP,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        pass
