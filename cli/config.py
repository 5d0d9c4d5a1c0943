"""``archevo config show``: every campaign field with its default, as a TOML file takes it."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer

from .campaigns import fail

config = typer.Typer(help="Campaign configuration.", no_args_is_help=True, rich_markup_mode=None)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is a JSON string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def to_toml(data: dict[str, Any]) -> str:
    """Flat fields first, then one [table] per nested model; unset (None) fields as comments."""
    flat = [
        f"{k} = {_toml_value(v)}" if v is not None else f"# {k} = (unset)"
        for k, v in data.items()
        if not isinstance(v, dict) or not v or k == "mutation_weights"
    ]
    tables = [
        f"\n[{k}]\n"
        + "\n".join(f"{f} = {_toml_value(x)}" if x is not None else f"# {f} = (unset)" for f, x in v.items())
        for k, v in data.items()
        if isinstance(v, dict) and v and k != "mutation_weights"
    ]
    return "\n".join(flat) + "\n" + "\n".join(tables) + "\n"


@config.command("show")
def show(preset: Optional[str] = typer.Option(None, "--preset", help="the defaults under this preset")) -> None:
    """Print every CampaignConfig field with its default: a starting point for `--config FILE`."""
    from pydantic import ValidationError

    from search.config import CampaignConfig

    try:
        defaults = CampaignConfig.model_validate({} if preset is None else {"preset": preset})
    except ValidationError as error:
        raise fail(f"--preset: {error.errors()[0]['msg']}")
    print(to_toml(defaults.model_dump(mode="json")), end="")
