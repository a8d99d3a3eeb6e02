"""Kafka TLS and SASL: what the settings turn into for FastStream's brokers and for aiokafka's clients."""

import ssl

import pytest
from faststream.kafka.security import parse_security
from pydantic import ValidationError

from service.config import Settings
from service.kafka import broker_security, client_options

PASSWORD = "s3cret-sasl-password"


def sasl(protocol: str = "SASL_SSL", mechanism: str = "SCRAM-SHA-512") -> Settings:
    return Settings(
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="orders",
        kafka_sasl_password=PASSWORD,
    )


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    settings = Settings()
    assert broker_security(settings) is None
    assert client_options(settings) == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_over_tls_reaches_the_brokers_and_the_clients_alike(mechanism: str) -> None:
    settings = sasl(mechanism=mechanism)

    for options in (parse_security(broker_security(settings)), client_options(settings)):
        assert options["security_protocol"] == "SASL_SSL"
        assert options["sasl_mechanism"] == mechanism
        assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("orders", PASSWORD)
        assert isinstance(options["ssl_context"], ssl.SSLContext)
        assert options["ssl_context"].verify_mode is ssl.CERT_REQUIRED


def test_tls_without_sasl() -> None:
    settings = Settings(kafka_security_protocol="SSL")

    for options in (parse_security(broker_security(settings)), client_options(settings)):
        assert options["security_protocol"] == "SSL"
        assert isinstance(options["ssl_context"], ssl.SSLContext)
        assert "sasl_mechanism" not in options


def test_sasl_without_tls_has_no_tls_context() -> None:
    options = client_options(sasl(protocol="SASL_PLAINTEXT", mechanism="PLAIN"))
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert "ssl_context" not in options


def test_sasl_needs_credentials() -> None:
    with pytest.raises(ValidationError, match="kafka_sasl_username and kafka_sasl_password"):
        Settings(kafka_security_protocol="SASL_SSL")


def test_the_password_is_never_shown() -> None:
    settings = sasl()
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings.model_dump())
    assert PASSWORD not in settings.model_dump_json()
