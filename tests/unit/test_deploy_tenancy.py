"""deploy/ grants exactly the per_client layout's topics: the Strimzi manifests and kafka-acls.sh name the
topics `client_topics` computes, and the service's and relay's principals read every client's by prefix.

kubernetes-validate has no Strimzi schemas, so the structure is checked here.
"""

import subprocess
from pathlib import Path
from typing import Any

import yaml

from service.config import Settings, TopicLayout
from service.kafka import client_topics

STRIMZI = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "strimzi"
ACLS_SCRIPT = STRIMZI.parents[1] / "kafka-acls.sh"
CLIENT = "acme-air"
LAYOUT = Settings(topic_layout=TopicLayout.PER_CLIENT)


def _documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((STRIMZI / name).read_text(encoding="utf-8")) if doc]


def _users() -> dict[str, dict[str, Any]]:
    docs = _documents("client-acme-air-user.yaml") + _documents("service-users.yaml")
    return {doc["metadata"]["name"]: doc for doc in docs}


def _grants(user: dict[str, Any], kind: str) -> dict[tuple[str, str], set[str]]:
    acls = user["spec"]["authorization"]["acls"]
    return {
        (acl["resource"]["name"], acl["resource"]["patternType"]): set(acl["operations"])
        for acl in acls
        if acl["resource"]["type"] == kind
    }


def test_every_strimzi_document_is_a_strimzi_resource_of_one_cluster() -> None:
    """apiVersion, kind and the cluster label, as the Strimzi operators read them."""
    for path in sorted(STRIMZI.glob("*.yaml")):
        for doc in _documents(path.name):
            assert doc["apiVersion"] == "kafka.strimzi.io/v1beta2", path
            assert doc["kind"] in {"KafkaTopic", "KafkaUser"}, path
            assert doc["metadata"]["labels"]["strimzi.io/cluster"] == "orders-kafka", path
            if doc["kind"] == "KafkaUser":
                assert doc["spec"]["authorization"]["type"] == "simple", path


def test_the_topics_are_the_ones_the_layout_creates_for_the_client() -> None:
    """The KafkaTopics are the client's three topics, configured as `ensure_client_topics` creates them."""
    topics = _documents("client-acme-air-topics.yaml")
    assert sorted(t["spec"]["topicName"] for t in topics) == sorted(client_topics(LAYOUT, CLIENT).all())
    for topic in topics:
        assert topic["spec"]["partitions"] == LAYOUT.topic_partitions
        assert topic["spec"]["config"]["retention.ms"] == LAYOUT.topic_retention_ms


def test_the_client_may_write_its_commands_and_read_its_own_events_only() -> None:
    """Literal grants on exactly its topics: writing another client's commands topic is not allowed."""
    own = client_topics(LAYOUT, CLIENT)
    grants = _grants(_users()[CLIENT], "topic")
    assert grants == {
        (own.commands, "literal"): {"Write", "Describe"},
        (own.status_changed, "literal"): {"Read", "Describe"},
        (own.command_rejected, "literal"): {"Read", "Describe"},
    }


def test_the_service_and_the_relay_read_every_clients_topics_by_prefix() -> None:
    """The prefixes are what the pattern subscriptions match (`<topic>.<client_id>`)."""
    users = _users()
    service = _grants(users["orders-service"], "topic")
    relay = _grants(users["orders-relay"], "topic")
    assert "Read" in service[(f"{LAYOUT.topic_commands}.", "prefix")]
    assert "Write" in service[(f"{LAYOUT.topic_status_changed}.", "prefix")]
    assert "Write" in service[(f"{LAYOUT.topic_command_rejected}.", "prefix")]
    assert "Read" in relay[(f"{LAYOUT.topic_status_changed}.", "prefix")]
    assert "Read" in relay[(f"{LAYOUT.topic_command_rejected}.", "prefix")]
    assert _grants(users["orders-service"], "group")[(f"{LAYOUT.consumer_group}.", "prefix")] == {"Read"}
    assert ("orders-relay", "prefix") in _grants(users["orders-relay"], "group")


def test_kafka_acls_script_names_the_same_topics() -> None:
    """`deploy/kafka-acls.sh client` grants on the client's three topics, and refuses a bad client id."""
    out = subprocess.run(
        ["sh", str(ACLS_SCRIPT), "client", CLIENT, "acme"], capture_output=True, text=True, check=True
    ).stdout
    named = {line.split("--topic ")[1].split()[0] for line in out.splitlines() if "--topic " in line}
    assert named == set(client_topics(LAYOUT, CLIENT).all())
    bad = subprocess.run(["sh", str(ACLS_SCRIPT), "client", "a.b", "x"], capture_output=True, check=False)
    assert bad.returncode == 2
