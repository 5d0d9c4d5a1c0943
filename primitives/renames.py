"""Renamed configuration fields: an old name is still read (TOML files, stored campaigns and
results), and a recipe hash is computed under the old names so that stored campaigns keep it."""

from __future__ import annotations

from typing import Any


def current_names(data: Any, renames: dict[str, str], where: str) -> Any:
    """``data`` with each old key of ``renames`` under its new name; a ValueError if both are given."""
    if not isinstance(data, dict) or not any(old in data for old in renames):
        return data
    data = dict(data)
    for old, new in renames.items():
        if old in data:
            if new in data:
                raise ValueError(f"{where}: {old!r} is the old name of {new!r}; give one of them")
            data[new] = data.pop(old)
    return data


def old_names(data: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    """``data`` (a dump) with each renamed key back under its old name: what a hash was taken of."""
    back = {new: old for old, new in renames.items()}
    return {back.get(key, key): value for key, value in data.items()}
