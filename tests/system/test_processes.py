"""The `orders` processes run for real: the demo, graceful shutdown, and no stray children."""

import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from service.devstack import Endpoints, free_port
from tests.system.processes import ORDERS, children_of, is_alive, live_processes_in_session, read_until

WITHOUT_STACK_ENV = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}


def wait_until_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [pid for pid in pids if is_alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


@pytest.mark.timeout(150)
def test_demo_shows_confirmed_and_failed_orders_and_leaves_no_process_behind() -> None:
    """`orders demo` (what `make demo` runs) exits 0, prints 5 → 1 and 5 → 10, and stops all it started."""
    demo = subprocess.Popen(
        [*ORDERS, "demo", "--orders", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    stdout, stderr = demo.communicate(timeout=140)
    output = stdout.decode()

    assert demo.returncode == 0, output + stderr.decode()[-3000:]
    assert "5 Pending   ->  1 Confirmed" in output
    assert "5 Pending   -> 10 Failed" in output
    # The demo led its own session: anything still in it would be a stray broker, Redis or service.
    assert wait_until_gone(live_processes_in_session(demo.pid)) == []


@pytest.mark.timeout(60)
def test_service_drains_and_exits_cleanly_on_sigterm(stack: Endpoints) -> None:
    """It serves its metrics on its own port; SIGTERM stops the consumers after in-flight work, exit 0."""
    run = f"sig{uuid.uuid4().hex[:6]}"
    metrics_port = free_port()
    env = {
        **os.environ,
        **stack.environ(),
        "ORDERS_TOPIC_COMMANDS": f"{run}.commands",
        "ORDERS_TOPIC_RESOURCE_REPLIES": f"{run}.replies",
        "ORDERS_CONSUMER_GROUP": run,
        "ORDERS_METRICS_PORT": str(metrics_port),
    }
    service = subprocess.Popen(
        [*ORDERS, "service"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    try:
        read_until(service, b"started successfully", timeout=45)
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        assert "orders_inputs_applied_total" in metrics.text
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=20) == 0
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()


@pytest.mark.timeout(60)
def test_embedded_stack_dies_with_a_killed_parent() -> None:
    """SIGKILL of the process that started Tansu and Redis takes them down too (no orphaned servers)."""
    script = (
        "from service.devstack import EmbeddedStack\n"
        "import time\n"
        "e = EmbeddedStack().start()\n"
        "print('ready', e.kafka_bootstrap_servers, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=WITHOUT_STACK_ENV,
    )
    try:
        read_until(parent, b"ready", timeout=30)
        children = children_of(parent.pid)
        assert len(children) == 2, "Tansu and redis-server"
        parent.kill()
        parent.wait()
        assert wait_until_gone(children) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
