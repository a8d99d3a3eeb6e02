"""`orders healthcheck`, the image's HEALTHCHECK: healthy when the container's process answers."""

import os
import re
import subprocess
import sys
from pathlib import Path

from prometheus_client import start_http_server

from service.devstack import free_port

ROOT = Path(__file__).parents[2]


def healthcheck(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "healthcheck"],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_healthy_when_the_metrics_port_answers_and_unhealthy_when_nothing_does() -> None:
    serving, silent = free_port(), free_port()
    server, thread = start_http_server(serving, addr="127.0.0.1")
    try:
        ok = healthcheck(ORDERS_METRICS_PORT=str(serving), ORDERS_API_PORT=str(silent))
        down = healthcheck(ORDERS_METRICS_PORT=str(silent), ORDERS_API_PORT=str(silent))
    finally:
        server.shutdown()
        thread.join()

    assert ok.returncode == 0, ok.stderr
    assert down.returncode == 1
    assert f"127.0.0.1:{silent}/metrics" in down.stderr


def test_the_image_runs_it() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r'^HEALTHCHECK .* CMD \["orders", "healthcheck"\]$', dockerfile, re.MULTILINE)
