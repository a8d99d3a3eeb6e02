"""Names of a run's own, so concurrent test modules and benchmark runs never read each other's messages."""

from typing import Any

from service.config import Settings

GROUP_NAMES = {"consumer_group": "orders-service", "sim_group": "resource-sim", "relay_group": "relay"}
"""What follows the run id in each consumer group's name (benchmark reports name the groups by it)."""


def isolated_names(run_id: str, settings_class: type[Settings] = Settings) -> dict[str, Any]:
    """Every topic and consumer-group setting of `settings_class`, named `<run_id>.<name>`.

    Derived from the settings' fields, so a topic or group added to them later is isolated too.
    """
    names: dict[str, Any] = {}
    for name, field in settings_class.model_fields.items():
        # `type(...) is str`: names only, not the topic layout (a StrEnum).
        if (name.startswith("topic_") or name.endswith("_group")) and type(field.default) is str:
            names[name] = f"{run_id}.{GROUP_NAMES.get(name, field.default)}"
    return names
