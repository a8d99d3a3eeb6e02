"""TLS and SASL for every Kafka client the processes open: the FastStream brokers, the outbox producer and
the admin client that creates topics. One place maps the settings to what each library takes."""

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from service.config import Settings

_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL: the system's CAs unless `kafka_ssl_cafile` names others, and a
    client certificate when `kafka_ssl_certfile` is set (mutual TLS)."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.kafka_ssl_cafile,
        certfile=settings.kafka_ssl_certfile,
        keyfile=settings.kafka_ssl_keyfile,
    )
    return context


def broker_security(settings: Settings) -> BaseSecurity | None:
    """What a FastStream `KafkaBroker` takes as `security`."""
    protocol = settings.kafka_security_protocol
    context = ssl_context(settings)
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    username, password = _credentials(settings)
    return _SASL[settings.kafka_sasl_mechanism](
        username, password, ssl_context=context, use_ssl=protocol == "SASL_SSL"
    )


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka's producer, consumer and admin client."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if (context := ssl_context(settings)) is not None:
        options["ssl_context"] = context
    if protocol.startswith("SASL"):
        username, password = _credentials(settings)
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": username,
            "sasl_plain_password": password,
        }
    return options


def _credentials(settings: Settings) -> tuple[str, str]:
    # The settings refuse a SASL protocol without both (see Settings), so these are always set here.
    assert settings.kafka_sasl_username is not None
    assert settings.kafka_sasl_password is not None
    return settings.kafka_sasl_username, settings.kafka_sasl_password.get_secret_value()
