"""The stall report of `bench.pipeline` reads aiokafka's private state; this keeps it readable across
aiokafka upgrades, on real clients of the real broker."""

from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

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
    assert "0 answers awaited" in report and "reader task running" in report
    assert "transport reading True" in report
    assert "test_the_stall_report_describes_live_clients_and_the_pending_tasks" in report
