"""Helpers for tests that run the project's processes for real."""

import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

ORDERS = [sys.executable, "-m", "service.cli"]


def _process_stats() -> list[tuple[int, list[str]]]:
    """(pid, the fields of /proc/<pid>/stat after the command name) of every process."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            found.append((int(stat.parent.name), stat.read_text().rsplit(")", 1)[1].split()))
        except OSError:
            continue
    return found


def live_processes_in_session(session_id: int) -> list[int]:
    """PIDs of processes (zombies excluded) in the given session."""
    return [pid for pid, fields in _process_stats() if int(fields[3]) == session_id and fields[0] != "Z"]


def children_of(pid: int) -> list[int]:
    """Direct children of `pid`."""
    return [child for child, fields in _process_stats() if int(fields[1]) == pid]


def is_alive(pid: int) -> bool:
    """Whether `pid` is a live (non-zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def read_until(process: subprocess.Popen[bytes], marker: bytes, timeout: float) -> bytes:
    """Read the process's stdout until a line contains `marker`; fail after `timeout` seconds."""
    assert process.stdout is not None
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while marker not in seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or process.poll() is not None:
                raise AssertionError(f"no {marker!r} in output: {seen[-3000:]!r}")
            if selector.select(remaining):
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"output ended without {marker!r}: {seen[-3000:]!r}")
                seen += chunk
    return seen
