"""The secrets among the settings (the SASL password, the Redis URL with its password) are never shown: not
in reprs or dumps, not in a validation error however it is printed; the Redis client still gets the URL."""

import pytest
from pydantic import SecretStr, ValidationError

from service.config import ApiSettings, RelaySettings, Settings, settings_problems
from service.store.client import connect_with

SASL_PASSWORD = "sasl-pw-do-not-print"
REDIS_PASSWORD = "redis-pw-do-not-print"
REDIS_URL = f"redis://:{REDIS_PASSWORD}@redis.internal:6380/0"


def _refused(**settings: object) -> ValidationError:
    with pytest.raises(ValidationError) as refused:
        Settings(**settings)  # type: ignore[arg-type]
    return refused.value


def _as_printed(error: ValidationError) -> str:
    """Every way an error gets printed: a traceback (str), a log's repr, the CLI's summary. (`errors()` and
    `json()` still hold the inputs: they are data, for code, and nothing here prints them.)"""
    return "\n".join([str(error), repr(error), settings_problems(error)])


def test_a_model_wide_error_shows_no_input() -> None:
    """The SASL check fails on the whole model, which pydantic would quote in full, secrets and all."""
    error = _refused(
        kafka_security_protocol="SASL_SSL", kafka_sasl_password=SASL_PASSWORD, redis_url=REDIS_URL
    )
    rendered = _as_printed(error)
    assert "needs kafka_sasl_username and kafka_sasl_password" in rendered
    assert SASL_PASSWORD not in rendered and REDIS_PASSWORD not in rendered


def test_the_one_line_summary_names_variables_and_never_values() -> None:
    """`settings_problems` says which variable is wrong and why, even where `errors()` still has inputs."""
    error = _refused(redis_url="redis.internal:6380", kafka_sasl_password=SASL_PASSWORD, max_batch="many")
    summary = settings_problems(error)
    assert summary == (
        "REDIS_URL: must start with redis://, rediss://, unix://; "
        "ORDERS_MAX_BATCH: Input should be a valid integer, unable to parse string as an integer"
    )
    assert "redis.internal" not in summary and "many" not in summary


@pytest.mark.parametrize("model", [Settings, ApiSettings, RelaySettings])
def test_the_redis_url_is_a_secret_everywhere_but_in_the_client(model: type[Settings]) -> None:
    """Masked in reprs and dumps; the Redis client is configured with the real URL."""
    settings = model(redis_url=REDIS_URL, kafka_sasl_password=SASL_PASSWORD)
    assert isinstance(settings.redis_url, SecretStr)
    for shown in (repr(settings), str(settings), str(settings.model_dump()), settings.model_dump_json()):
        assert REDIS_PASSWORD not in shown and SASL_PASSWORD not in shown
    client = connect_with(settings)
    assert client.connection_pool.connection_kwargs["password"] == REDIS_PASSWORD
    assert REDIS_PASSWORD not in repr(client)
