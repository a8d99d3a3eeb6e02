"""The stall report of `bench.pipeline`: written when a phase stops progressing, and readable across aiokafka
upgrades (it reads aiokafka's private state), on real clients of the real broker."""

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench import pipeline
from bench.stall import write_stall_report
from service.devstack import Endpoints
from service.kafka import ensure_topics
from testkit.factories import unique


async def test_the_stall_report_describes_live_clients_and_the_pending_tasks(
    stack: Endpoints, tmp_path: Path
) -> None:
    """A producer with an answered send and a consumer that fetched: each client's task and connections
    are described (nothing awaited, readers running), with this test among the pending tasks."""
    topic = unique("stall")
    await ensure_topics(stack.kafka_bootstrap_servers, [topic], 1, 1)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap_servers, acks="all")
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.kafka_bootstrap_servers, auto_offset_reset="earliest"
    )
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(topic, b"one")
        assert (await consumer.getone()).value == b"one"
        path = tmp_path / "stall.txt"
        write_stall_report(path, {"commands": producer}, {"observer": consumer})
    finally:
        await consumer.stop()
        await producer.stop()

    report = path.read_text()
    assert "Traceback" not in report, report
    assert "producer commands: sender task running, nodes in flight [], " in report
    assert "batches queued 0, sent and unanswered 0" in report
    assert "consumer observer: fetch task running" in report
    assert "0: position 1, high watermark 1" in report  # it read the one record there is
    assert "0 answers awaited" in report and "reader task running" in report
    assert "transport reading True" in report
    assert "test_the_stall_report_describes_live_clients_and_the_pending_tasks" in report


async def test_a_phase_that_stops_progressing_has_the_load_generators_state_written(
    stack: Endpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No send, acknowledgement or arrival for a whole window: the report is written, once, and says so;
    a phase that ends first leaves none."""
    monkeypatch.setattr(pipeline, "STALL_SECONDS", 0.05)
    monkeypatch.setattr(pipeline, "RESULTS_DIR", tmp_path)
    topic = unique("stall")
    await ensure_topics(stack.kafka_bootstrap_servers, [topic], 1, 1)
    observer = pipeline.Observer(stack.kafka_bootstrap_servers, topic, lambda _: None, 10)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap_servers)
    await producer.start()
    try:
        for value in (b'{"order_id": "ORD-1", "status": 5}', b'{"order_id": "ORD-2", "status": 5}'):
            await producer.send_and_wait(topic, value)
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ended.set_result(None)
        assert await pipeline.watch_phase(ended, [], pipeline.Sent(), observer, producer, [topic]) is None

        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        batch = [("ORD-1", b"")]
        watched = pipeline.watch_phase(never, batch, pipeline.Sent(), observer, producer, [topic])
        written = await asyncio.wait_for(watched, 20)
    finally:
        await producer.stop()

    assert written is not None and written.parent == tmp_path
    text = await asyncio.to_thread(written.read_text)
    assert text.startswith("0.05 s without progress: 0 sent, 0 acknowledged, 0 arrived\n"), text
    assert "orders of the phase not arrived: 1, the first ['ORD-1']" in text
    # Its trail on the traced topic, and not another order's.
    assert f"""  {topic}[0]@0: b'{{"order_id": "ORD-1", "status": 5}}'""" in text
    assert "ORD-2" not in text
    assert f"read to the high watermarks {{'{topic}[0]': 2}}" in text
    assert "producer commands: sender task running" in text


async def test_a_phase_that_stops_progressing_fails_with_where_its_report_is(
    stack: Endpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command sent and acknowledged whose order never completes: the phase fails after the watchdog's
    window, naming its report, instead of waiting out its time limit."""
    monkeypatch.setattr(pipeline, "STALL_SECONDS", 0.2)
    monkeypatch.setattr(pipeline, "RESULTS_DIR", tmp_path)
    sent_to, observed = unique("commands"), unique("events")
    await ensure_topics(stack.kafka_bootstrap_servers, [sent_to, observed], 1, 1)
    observer = pipeline.Observer(stack.kafka_bootstrap_servers, observed, pipeline.confirmed_order, 10)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap_servers)
    await observer.start()
    await producer.start()
    try:
        with pytest.raises(RuntimeError, match=r"^stalled: no progress for 0.2 s \(see .*pipeline-stall-"):
            await pipeline.measure(producer, observer, sent_to, [("ORD-9", b"{}")], "stalled", {})
    finally:
        await producer.stop()
        await observer.stop()
