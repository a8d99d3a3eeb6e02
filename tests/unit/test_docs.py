"""The docs are read the way a client or operator team reads them: every setting and every subcommand is
documented, and every link between the pages lands on a file and a heading that exist."""

import argparse
import re
from pathlib import Path

import pytest

from service.cli import build_parser
from service.config import ApiSettings, RelaySettings, ResourceSimSettings, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
SETTINGS_PAGES = [DOCS / "configuration.md", DOCS / "webhooks.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _env_names(model: type[Settings]) -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        names.add(str(choices[0]) if choices else f"ORDERS_{name.upper()}")
    return names


def _documented(name: str, text: str) -> bool:
    if re.search(rf"`{re.escape(name)}`", text):
        return True
    # Families are documented once, as `ORDERS_KAFKA_SASL_*`.
    return any(name.startswith(prefix) for prefix in re.findall(r"`(ORDERS_[A-Z_]+_)\*`", text))


def test_every_setting_of_every_process_is_documented() -> None:
    """A setting that exists in service/config.py but on no page cannot be found by an operator."""
    text = "\n".join(page.read_text(encoding="utf-8") for page in SETTINGS_PAGES)
    names = set().union(*(_env_names(m) for m in (Settings, RelaySettings, ApiSettings, ResourceSimSettings)))
    missing = sorted(name for name in names if not _documented(name, text))
    assert not missing, f"not in docs/configuration.md or docs/webhooks.md: {missing}"


def _commands(parser: argparse.ArgumentParser, prefix: str = "orders") -> list[str]:
    found = []
    for action in parser._actions:  # argparse exposes subparsers only through this attribute
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = _commands(sub, f"{prefix} {name}")
                found += nested or [f"{prefix} {name}"]
    return found


def test_every_subcommand_is_in_the_command_table() -> None:
    """Each `orders` subcommand has a row in docs/configuration.md (`orders webhooks enable|disable|…`)."""
    table = (DOCS / "configuration.md").read_text(encoding="utf-8")
    rows = [line for line in table.splitlines() if line.startswith("| `orders ")]
    missing = []
    for command in _commands(build_parser()):
        *group, last = command.split(" ")
        pattern = re.compile(rf"`{re.escape(' '.join(group))} [^`]*\b{re.escape(last)}\b")
        if not any(pattern.search(row) for row in rows):
            missing.append(command)
    assert not missing, f"no row in docs/configuration.md for {missing}"


def _anchor(heading: str) -> str:
    # GitHub's rule: lower case, drop punctuation but hyphens and spaces, spaces become hyphens.
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    lines = page.read_text(encoding="utf-8").splitlines()
    return {_anchor(line.lstrip("#")) for line in lines if re.match(r"#{1,6} ", line)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_lands_on_a_file_and_heading(page: Path) -> None:
    """Moving a section or a module must not leave a link behind that goes nowhere."""
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(target)
            continue
        if anchor and destination.suffix == ".md" and anchor not in _anchors(destination):
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"
