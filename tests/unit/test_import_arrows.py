"""The arrows between the layers point one way: the domain and the Kafka module depend on none of the
layers above them, and only the CLI depends on the order service's composition root."""

import ast
import sys
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "service"
KAFKA_MAY_IMPORT = {"service.config", "service.metrics", "service.logs"}
_STDLIB = frozenset(sys.stdlib_module_names)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from service import metrics` is a dependency on `service.metrics`, not on the whole package
            names |= {node.module} if node.module != "service" else {f"service.{a.name}" for a in node.names}
    return names


def test_only_the_cli_imports_the_order_service_composition_root() -> None:
    """The relay, the API, the simulator and the document generators never reach into `service.app`."""
    importers = {
        str(path.relative_to(SERVICE)) for path in SERVICE.rglob("*.py") if "service.app" in _imports(path)
    }
    assert importers == {"cli.py"}


def test_the_kafka_module_imports_only_contracts_settings_and_libraries() -> None:
    """`service.kafka` sits below every process, so it imports none of their modules."""
    for path in (SERVICE / "kafka").glob("*.py"):
        ours = {name for name in _imports(path) if name.split(".")[0] == "service"}
        above = {name for name in ours if not name.startswith("service.kafka")} - KAFKA_MAY_IMPORT
        assert not above, f"{path.name} imports {sorted(above)}"


def test_the_domain_imports_only_the_standard_library_pydantic_msgspec_and_contracts() -> None:
    """`service.domain` is pure: no Redis, no Kafka, no HTTP, nothing of the layers that call it (msgspec
    holds the stored order's shape)."""
    allowed_roots = {"pydantic", "msgspec", "contracts", "service"}
    for path in (SERVICE / "domain").glob("*.py"):
        for name in _imports(path):
            root = name.split(".")[0]
            if root == "service":
                assert name.startswith("service.domain"), f"{path.name} imports {name}"
            else:
                assert root in allowed_roots or root in _STDLIB, f"{path.name} imports {name}"
