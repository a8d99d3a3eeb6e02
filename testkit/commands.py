"""`orders` commands run as the operator runs them: a process of their own, its output captured."""

import subprocess
import sys


def run_orders(*args: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`orders <args>` with exactly `environment` (nothing inherited), within a minute."""
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=environment,
    )
