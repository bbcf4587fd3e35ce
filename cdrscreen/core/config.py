"""One configuration layer for every file a user writes.

Evaluation protocols, extraction specs and FER recipes are all pydantic models built on
:class:`StrictModel` (unknown keys are errors), read with :func:`read_yaml` and
validated with :func:`validate`, so every configuration file fails the same way: one
line naming the file, each bad key, and for a misspelt key the closest valid one.
"""

from __future__ import annotations

import difflib
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from cdrscreen.core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every configuration schema: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


class FrozenModel(StrictModel):
    """A :class:`StrictModel` whose instances cannot be changed after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a mapping with the same key twice."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (first at line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_text(text: str, where: str) -> Any:
    """Parse YAML ``text`` (duplicate keys refused); errors name ``where`` and the line."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML{line}: {problem}") from None


def read_yaml(path: str | os.PathLike[str], what: str = "configuration file") -> dict[str, Any]:
    """Read a YAML file that must hold a mapping.

    Raises
    ------
    ConfigError
        One line naming the file: missing, unreadable, not YAML, duplicate key, not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror})") from None
    data = load_yaml_text(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping of keys to values")
    return data


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted = 'a.b'`` (creating mappings on the way)."""
    keys = dotted.split(".")
    for k in keys[:-1]:
        data = data.setdefault(k, {})
    data[keys[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``dotted.key=yaml_value`` overrides to ``data`` in place and return it."""
    for ov in overrides or []:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r}: expected key.path=value")
        key, value = ov.split("=", 1)
        set_dotted(data, key.strip(), load_yaml_text(value, f"override {ov!r}"))
    return data


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names valid at ``loc`` (a pydantic error location) inside ``model``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        ann = field.annotation
        for _ in range(3):  # unwrap list[...] / Optional[...] / dict[str, ...]
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if isinstance(ann, type) and issubclass(ann, BaseModel) or not args:
                break
            ann = args[-1]
        current = ann
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def format_validation_error(err: ValidationError, source: str, model: type[BaseModel]) -> str:
    """One line naming ``source``, each bad key and, for an unknown key, the close match."""
    problems = []
    for e in err.errors():
        loc = tuple(e["loc"])
        if e["type"] == "extra_forbidden":
            key = str(loc[-1])
            valid = _fields_at(model, loc[:-1])
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
            hint = f" - did you mean '{close[0]}'?" if close else f" (valid keys: {', '.join(valid)})"
            problems.append(f"unknown key '{_where(loc)}'{hint}")
        elif e["type"] == "missing":
            problems.append(f"missing key '{_where(loc)}'")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            problems.append(f"{_where(loc) or 'top level'}: {msg}")
    return f"{source}: " + "; ".join(problems)


def validate(model: type[M], data: Any, source: str) -> M:
    """Validate ``data`` against ``model``; any problem is one :class:`ConfigError` line."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, model)) from None


def load_config(
    model: type[M], path: str | os.PathLike[str], overrides: list[str] | None = None,
    what: str = "configuration file",
) -> M:
    """Read ``path`` (YAML), apply overrides and validate it against ``model``."""
    data = apply_overrides(read_yaml(path, what), overrides)
    return validate(model, data, str(path))
