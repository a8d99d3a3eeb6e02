"""Settings of every process, read from the environment (pydantic-settings); build with `load_settings()`."""

import ipaddress
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import limits, topics
from contracts.limits import MAX_EVENT_BYTES
from service.domain.policy import Policy


class TopicLayout(StrEnum):
    """How the commands, status and rejections topics are shared between clients."""

    SHARED = "shared"
    PER_CLIENT = "per_client"


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class Settings(BaseSettings):
    """`KAFKA_BOOTSTRAP_SERVERS` and `REDIS_URL` as is; everything else prefixed `ORDERS_`."""

    model_config = SettingsConfigDict(
        env_prefix="ORDERS_",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
        # A validation error would otherwise quote what it was given: for a model-wide check, every
        # setting at once, the SASL password and the Redis URL among them.
        hide_input_in_errors=True,
    )

    kafka_bootstrap_servers: Annotated[
        str, Field(validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "ORDERS_KAFKA_BOOTSTRAP_SERVERS"))
    ] = "127.0.0.1:9092"
    redis_url: Annotated[SecretStr, Field(validation_alias=AliasChoices("REDIS_URL", "ORDERS_REDIS_URL"))] = (
        SecretStr("redis://127.0.0.1:6379/0")
    )
    """May carry the Redis password (`redis://:<password>@host:6379/0`), so it is a secret: shown as
    `**********` in reprs, dumps and errors; `redis_url.get_secret_value()` is for the Redis client only."""
    redis_cluster: bool = False
    """`REDIS_URL` names one node of a Redis Cluster (every atomic step stays within one hash slot)."""

    topic_commands: str = topics.ORDER_COMMANDS
    topic_resource_requests: str = topics.RESOURCE_REQUESTS
    topic_resource_replies: str = topics.RESOURCE_REPLIES
    topic_status_changed: str = topics.ORDER_STATUS_CHANGED
    topic_command_rejected: str = topics.COMMAND_REJECTED
    topic_dead_letter: str = topics.DEAD_LETTER

    topic_layout: TopicLayout = TopicLayout.SHARED
    """`shared`: one commands, status and rejections topic for every client. `per_client`: each client has
    its own three (`<topic>.<client_id>`), so that the topic a principal may write says who it is."""
    topic_partitions: PositiveInt = 4
    """Partitions of the topics the service creates when they are missing."""
    topic_replication_factor: PositiveInt = 1
    topic_retention_ms: PositiveInt = 7 * 24 * 3600 * 1000
    """`retention.ms` of the topics the service creates. At most the idempotency retention: an input read
    again after its `command_id` claim expired would count as new."""
    topic_dead_letter_retention_ms: PositiveInt = 30 * 24 * 3600 * 1000
    """`retention.ms` of the dead-letter topic, which people read and replay from: longer by default."""
    consumer_group: str = "orders-service"
    """The commands and replies consumers use `<group>.commands` and `<group>.replies`."""

    max_batch: PositiveInt = 500
    """Records handled per consumer batch. A batch costs four to six pipelined Redis round trips whatever
    its size (read, walk-in entitlements, commit, local effects, outbox acknowledgement, anomalies)."""
    max_message_bytes: PositiveInt = 256 * 1024
    """Larger inputs are dead-lettered: the broker may accept far bigger ones (Tansu does)."""
    confirmation_timeout_seconds: PositiveFloat = 120.0
    """A prebooking still Pending this long after creation fails with `CONFIRMATION_TIMEOUT`."""
    waitlist_timeout_seconds: PositiveFloat = 7200.0
    """A prebooking with a waitlisted item may stay Pending this long after creation (default 2 hours),
    then fails with `WAITLIST_TIMEOUT`; it extends the confirmation deadline only if it is the longer."""
    no_show_grace_seconds: Annotated[float, Field(ge=0)] = 43200.0
    """A confirmed prebooking whose last service date ended (24:00 UTC) this long ago (default 12 hours) with
    services never redeemed: those become NOT_CLAIMED (`NO_SHOW`)."""
    no_show_graces: dict[str, Annotated[float, Field(ge=0)]] = {}
    """Per-resource no-show graces in seconds, overriding the default: JSON, e.g. `{"LHR-T5-FT": 3600}`."""
    timer_poll_seconds: PositiveFloat = 0.5
    """How often each instance looks for confirmation deadlines that passed."""
    timer_lease_seconds: PositiveFloat = 30.0
    """A claimed deadline is another instance's to fire again if not done within this time (a crash)."""
    walk_in_cancellation_window_seconds: PositiveFloat = 1800.0
    """Resource staff may cancel a walk-in usage this long after it was recorded (default 30 minutes)."""
    cancellation_windows: dict[str, PositiveFloat] = {}
    """Per-resource windows in seconds, overriding the default: JSON, e.g. `{"LHR-T5-LOUNGE": 3600}`."""
    shutdown_grace_seconds: PositiveFloat = 15.0
    """On SIGTERM, in-flight batches get this long to finish before the process exits."""
    batch_timeout_seconds: PositiveFloat = 30.0
    """A batch whose Redis round trips and broker acknowledgements take longer fails and is read again, so
    a hung Redis or broker cannot hold a partition (the service's Redis client has no per-reply limit)."""
    retry_backoff_seconds: PositiveFloat = 1.0
    """Pause before a batch is re-read after Redis or Kafka failed under it (offsets stay uncommitted)."""
    order_retention_seconds: PositiveInt = 30 * 24 * 3600
    """Finished orders (Used, Cancelled, Failed) are deleted this long after their last change, Confirmed ones
    this long after their last service date; Pending ones are kept. At least the idempotency retention."""
    client_index_retention_seconds: PositiveInt = 400 * 24 * 3600
    """Orders created longer ago than this leave their client's listing (GET /v1/orders); by id they are
    served as long as they are stored."""
    idempotency_retention_seconds: PositiveInt = 7 * 24 * 3600
    """How long a command_id stays claimed by its first payload (reuse within it is IDEMPOTENCY_CONFLICT)."""
    kafka_session_timeout_ms: PositiveInt = 10_000
    """A consumer silent this long (a crashed instance) loses its partitions to the others."""
    kafka_heartbeat_interval_ms: PositiveInt = 3_000
    kafka_metadata_max_age_ms: PositiveInt = 5000
    """How often consumers refresh the cluster's topic list: in the `per_client` layout, how soon the topics
    of a client created while the processes run are read."""
    kafka_fetch_max_wait_ms: PositiveInt = 500
    """How long the broker may hold a consumer's fetch while no records wait. Kafka answers as soon as records
    arrive, so this only paces idle polling. On Tansu, the embedded broker, it also bounds how far a fetch
    reads: the embedded stack sets 10 ms (why: `service.devstack.EMBEDDED_FETCH_MAX_WAIT_MS`)."""
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How every Kafka client connects: SSL is TLS, SASL_SSL is TLS plus SASL (managed Kafka services)."""
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    """Never logged or shown (pydantic SecretStr); give it from a secret store, like REDIS_URL."""
    kafka_ssl_cafile: str | None = None
    """CA bundle (PEM) to verify the brokers; the system's CAs when unset."""
    kafka_ssl_certfile: str | None = None
    """Client certificate (PEM) for mutual TLS, with `kafka_ssl_keyfile`."""
    kafka_ssl_keyfile: str | None = None
    kafka_enable_idempotence: bool = False
    """Turn on for real Kafka; the embedded Tansu broker does not support the idempotent producer."""

    max_api_keys_per_client: PositiveInt = limits.API_KEYS_PER_CLIENT
    """Unrevoked API keys a client may hold; `orders client create` refuses another (revoke one first)."""

    log_level: str = "INFO"

    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 0
    """`orders service` and `orders relay` serve Prometheus metrics on this port (0: not served)."""
    api_host: str = "127.0.0.1"
    api_port: Annotated[int, Field(ge=0, le=65535)] = 8080

    @field_validator("redis_url")
    @classmethod
    def _redis_url_has_a_scheme(cls, url: SecretStr) -> SecretStr:
        # redis-py would refuse it only at the first connection, with the URL in a traceback.
        if not url.get_secret_value().startswith(_REDIS_SCHEMES):
            raise ValueError(f"must start with {', '.join(_REDIS_SCHEMES)}")
        return url

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> "Settings":
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"{self.kafka_security_protocol} needs kafka_sasl_username and kafka_sasl_password"
            )
        return self

    @model_validator(mode="after")
    def _topics_forget_inputs_before_their_claims(self) -> "Settings":
        if self.topic_retention_ms > self.idempotency_retention_seconds * 1000:
            raise ValueError("topic_retention_ms must be at most idempotency_retention_seconds (in ms)")
        return self

    @model_validator(mode="after")
    def _retention_outlives_idempotency(self) -> "Settings":
        # A finished order forgotten while its command_id is still claimed would let a re-delivered command
        # create it again; one forgotten inside a cancellation window could not be cancelled.
        longest_window = max([self.walk_in_cancellation_window_seconds, *self.cancellation_windows.values()])
        if self.order_retention_seconds < max(self.idempotency_retention_seconds, longest_window):
            raise ValueError(
                "order_retention_seconds must be at least idempotency_retention_seconds and every "
                "cancellation window"
            )
        return self


class ResourceSimSettings(Settings):
    """The resource operator simulator: how long it takes and how often it says no."""

    sim_latency_seconds: Annotated[float, Field(ge=0)] = 0.0
    sim_failure_ratio: Annotated[float, Field(ge=0, le=1)] = 0.0
    sim_fail_resources: str = ""
    """Comma-separated resource ids that always refuse (the demo uses one)."""
    sim_silent_resources: str = ""
    """Comma-separated resource ids that never answer (their prebookings time out)."""
    sim_waitlist_resources: str = ""
    """Comma-separated resource ids that answer `waitlisted` and nothing more: the waitlist deadline or a
    reply sent by hand settles their prebookings."""
    sim_waitlist_then_confirm_resources: str = ""
    """Comma-separated resource ids that answer `waitlisted`, then at once `confirmed` (the benchmarks)."""
    sim_seed: int | None = None
    sim_group: str = "resource-sim"
    sim_fetch_max_wait_ms: PositiveInt | None = None
    """How long the broker may hold the simulator's fetches; unset: `kafka_fetch_max_wait_ms`. On Tansu the
    wait paces the simulator's polling, which is most of its CPU."""


def _network(value: object) -> object:
    # ipaddress says what is wrong ("has host bits set"), where pydantic's own type only says "not valid".
    if not isinstance(value, str):
        return value
    try:
        return ipaddress.ip_network(value)
    except ValueError as error:
        raise ValueError(f"not a network in CIDR notation: {error}") from None


_Network = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(_network)]


class WebhookTargetSettings(Settings):
    """The rules for webhook URLs: the relay applies them when it connects, the API and the CLI when an
    endpoint is registered, so both read them from the same variables."""

    relay_require_https: bool = True
    """Endpoints must be https (turn off only for local development and tests)."""
    relay_allowed_networks: list[_Network] = []
    """CIDRs callable although private, loopback or link-local (a JSON list; the tests allow 127.0.0.0/8),
    parsed here so that a malformed one stops the process at start."""
    max_webhook_endpoints_per_client: PositiveInt = limits.WEBHOOK_ENDPOINTS_PER_CLIENT
    """Endpoints a client may register (API: 409 `LIMIT_REACHED`; `orders webhooks add` refuses)."""


class RelaySettings(WebhookTargetSettings):
    """The webhook relay (`ORDERS_RELAY_*`): retries, limits and target safety."""

    relay_group: str = "orders-relay"
    relay_timeout_seconds: PositiveFloat = 5.0
    """An attempt that has not answered within this is a failure."""
    relay_retry_schedule_seconds: list[PositiveFloat] = [5, 30, 120, 600, 1800, 3600, 7200, 14400]
    """Waits before the retries after a failed first attempt; the delivery is dead after the last."""
    relay_jitter: Annotated[float, Field(ge=0, le=1)] = 0.2
    """Each wait is stretched or shrunk at random by up to this fraction, so retries do not come in waves."""
    relay_max_retry_after_seconds: PositiveFloat = 3600
    relay_poll_seconds: PositiveFloat = 0.2
    relay_concurrency_per_endpoint: PositiveInt = 8
    """Attempts in flight at once to one endpoint, per relay instance."""
    relay_concurrency_per_client: PositiveInt = 64
    """Attempts in flight at once to all the endpoints of one client, per relay instance: whatever its
    endpoints do, a client holds at most this many of the instance's 500 HTTP connections."""
    relay_sweep_seconds: PositiveFloat = 30
    """How often each instance walks every endpoint: restores the due index after a crash between two
    steps, re-reads the configurations whose version changed, refreshes the endpoint gauges. The rounds
    between read only what is due."""
    relay_breaker_failures: PositiveInt = 10
    """Consecutive failures that pause an endpoint (the circuit breaker opens)."""
    relay_breaker_pause_seconds: PositiveFloat = 60
    relay_disable_after_seconds: PositiveFloat = 5 * 24 * 3600
    """An endpoint failing without a success for this long is disabled."""
    relay_max_request_bytes: PositiveInt = 256 * 1024
    """A larger event is not sent at all: its delivery is dead at once, with the reason. At least
    `contracts.limits.MAX_EVENT_BYTES`, so that every event of an order inside the limits can be sent."""
    relay_max_response_bytes: PositiveInt = 1024
    """Response bytes kept in the attempt log (the rest is not read)."""
    relay_attempt_log_length: PositiveInt = 10_000
    """Attempts kept per endpoint (the oldest are dropped first)."""

    @model_validator(mode="after")
    def _every_event_can_be_sent(self) -> "RelaySettings":
        if self.relay_max_request_bytes < MAX_EVENT_BYTES:
            raise ValueError(
                f"relay_max_request_bytes must be at least {MAX_EVENT_BYTES}, the largest event an order "
                "inside the contract's limits produces (contracts.limits.MAX_EVENT_BYTES); below it, the "
                "webhooks of such orders would be dead on their first attempt"
            )
        return self


class ApiSettings(WebhookTargetSettings):
    """The HTTP API (`orders api`): the connections, the commands topic and `ORDERS_API_HOST`/`_PORT` of
    `Settings`, the rules for webhook URLs, which it checks when an endpoint is registered, and the request
    rate of each API key."""

    api_rate_per_second: PositiveFloat = limits.API_REQUESTS_PER_SECOND
    """Requests per second each API key may make, sustained; beyond it, 429 with `Retry-After`."""
    api_rate_burst: PositiveInt = limits.API_REQUEST_BURST
    """Requests a key may make at once after a quiet spell (the size of its token bucket)."""

    portal_link_ttl_seconds: Annotated[int, Field(ge=30, le=7 * 24 * 3600)] = 900
    """How long a portal link (`orders portal link`, `POST /v1/portal-sessions`) may be opened; once only."""
    portal_session_ttl_seconds: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 8 * 3600
    """How long a portal session lasts from its opening (client link or operator login)."""
    portal_operator_password: SecretStr | None = None
    """The password of the portal's operator pages; unset, there is no operator login."""
    portal_secure_cookies: bool = False
    """Mark the portal's session cookie `Secure` even on plain-HTTP requests: set it when TLS ends in a proxy
    in front of the API (requests made over https get `Secure` anyway)."""
    portal_base_url: str = ""
    """Where the portal's links point (e.g. `https://orders.example.com`); `http://<API_HOST>:<API_PORT>`
    when empty."""
    portal_metrics_urls: list[str] = []
    """Prometheus `/metrics` URLs of the service and relay processes the operator's metrics page reads
    (a JSON list); the API's own metrics are always read."""


def policy_from(settings: Settings) -> Policy:
    """The domain's rules as configured."""
    return Policy(
        confirmation_timeout=timedelta(seconds=settings.confirmation_timeout_seconds),
        waitlist_timeout=timedelta(seconds=settings.waitlist_timeout_seconds),
        no_show_grace=timedelta(seconds=settings.no_show_grace_seconds),
        no_show_graces={r: timedelta(seconds=s) for r, s in settings.no_show_graces.items()},
        walk_in_cancellation_window=timedelta(seconds=settings.walk_in_cancellation_window_seconds),
        cancellation_windows={r: timedelta(seconds=s) for r, s in settings.cancellation_windows.items()},
        order_retention=timedelta(seconds=settings.order_retention_seconds),
    )


def settings_problems(error: ValidationError) -> str:
    """What is wrong with the settings, in one line: each variable by name and what is wrong with it, never
    its value (which may be a secret)."""
    problems = []
    for detail in error.errors(include_url=False, include_input=False, include_context=False):
        field, *within = detail["loc"] or ("",)
        message = detail["msg"].removeprefix("Value error, ")
        if not field:
            problems.append(message)
            continue
        path = "".join(f"[{part}]" for part in within)
        problems.append(f"{_variable(str(field))}{path}: {message}")
    return "; ".join(problems)


def _variable(field: str) -> str:
    """The environment variable that sets `field` (of `Settings` or any of its subclasses); an error's
    location names a field that has aliases by its alias, which is already the variable."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return field if field.isupper() else f"ORDERS_{field.upper()}"


def load_settings() -> Settings:
    """Read the service settings from the environment now."""
    return Settings()
