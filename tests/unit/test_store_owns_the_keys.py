"""The Redis key layout belongs to `service/store/`: no module above it names a key."""

import ast
import re
from pathlib import Path

import service

SERVICE = Path(service.__file__).parent
KEY_PREFIX = re.compile(
    r"^(order|webhook|webhooks|client|command|entitlement|apikey|timers|anomalies|portal):"
)


def _modules_above_the_store() -> list[Path]:
    return [p for p in SERVICE.rglob("*.py") if SERVICE / "store" not in p.parents]


def _imported(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    return []


def _key_names(tree: ast.AST) -> list[str]:
    """Imports of the key module, and string literals (f-string parts too) shaped like a key."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and "service.store.keys" in _imported(node):
            found.append(f"line {node.lineno}: imports service.store.keys")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and KEY_PREFIX.match(node.value):
            found.append(f"line {node.lineno}: {node.value!r}")
    return found


def test_no_module_above_the_store_builds_a_redis_key() -> None:
    """Consumers, relay, API and CLI ask the stores in domain terms; only `service/store/` knows keys."""
    offenders = {
        str(path.relative_to(SERVICE.parent)): names
        for path in _modules_above_the_store()
        if (names := _key_names(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert offenders == {}


def test_the_check_sees_a_key_built_above_the_store() -> None:
    """The check itself: a module importing the key module or spelling a key is caught."""
    source = 'from service.store.keys import order_key\nKEY = f"webhook:{{{1}}}:due"\n'
    assert len(_key_names(ast.parse(source))) == 2
