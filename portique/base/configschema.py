"""Typed, strict configuration records built from TOML tables.

A config section is a frozen dataclass whose fields carry a description and bounds
(``setting(...)``). ``build(cls, table, path)`` validates a dict against it: unknown keys,
missing keys, wrong types and out-of-range values are reported with the key's full path
(``gate.entrance: must be at most 32, got 40``), every problem of a file at once. Loading
a file and validating a dict are separate functions, so tests and the control socket can
validate without files.
"""

from __future__ import annotations

import dataclasses
import enum
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from portique.base.errors import ConfigError

T = TypeVar("T")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    description: str,
    minimum: float | None = None,
    maximum: float | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A config field with its documentation and bounds."""
    metadata = {"description": description, "minimum": minimum, "maximum": maximum}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; errors name the file and what is wrong with it."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def build(cls: type[T], table: Mapping[str, Any], path: str = "", *,
          base_dir: Path | None = None) -> T:
    """Validate `table` against the dataclass `cls`; relative paths resolve from base_dir.

    Every problem of the table, nested sections included, is found before one ConfigError
    carries them all (``problems``); a section's own checks (``__post_init__``) run once
    its keys are right."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{path or 'config'}: must be a table, got {_kind(table)}")
    assert dataclasses.is_dataclass(cls)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    problems: list[str] = []
    unknown = sorted(set(table) - set(fields))
    if unknown:
        where = ", ".join(_join(path, k) for k in unknown)
        problems.append(f"{where}: unknown key (known: {', '.join(sorted(fields))})")
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        key_path = _join(path, name)
        if name not in table:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                problems.append(f"{key_path}: required key is missing")
            continue
        try:
            value = _convert(hints[name], table[name], key_path, base_dir)
            _check_bounds(spec, value, key_path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        values[name] = value
    if problems:
        raise ConfigError(problems=tuple(problems))
    try:
        return cls(**values)
    except ConfigError as exc:
        top = path.split("[", maxsplit=1)[0].split(".", maxsplit=1)[0]
        if path and not all(p.startswith(top) for p in exc.problems):
            # a nested section's own check that does not know where the section is
            raise ConfigError(problems=tuple(p if p.startswith(top) else f"{path}.{p}"
                                             for p in exc.problems)) from None
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path or 'config'}: {exc}") from None


def describe(cls: type[Any]) -> list[tuple[str, str, str]]:
    """(key, type, description) for every key of a section, nested sections flattened."""
    rows: list[tuple[str, str, str]] = []
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        hint = _optional_dataclass(hints[spec.name])
        if dataclasses.is_dataclass(hint):
            rows += [(f"{spec.name}.{k}", t, d) for k, t, d in describe(hint)]  # type: ignore[arg-type]
        else:
            rows.append((spec.name, _type_name(hint), spec.metadata.get("description", "")))
    return rows


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    """One config key as `gate config keys` shows it."""

    key: str
    type: str
    """Readable: text, integer, number, true/false, path, one of a | b, list of ..."""
    required: bool
    default: Any
    """The default as TOML would write it (None: no default, or empty)."""
    minimum: float | None
    maximum: float | None
    description: str
    section_optional: bool = False
    """The key's section may be left out whole (its keys then do not apply)."""

    @property
    def bounds(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f"{_number(self.minimum)} to {_number(self.maximum)}"
        if self.minimum is not None:
            return f"at least {_number(self.minimum)}"
        if self.maximum is not None:
            return f"at most {_number(self.maximum)}"
        return ""

    @property
    def default_text(self) -> str:
        if self.required:
            return "required" + (" (in its section)" if self.section_optional else "")
        if self.default is None or self.default in ("", []):
            return "(empty)"
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, str):
            return f'"{self.default}"'
        if isinstance(self.default, float | int):
            return _number(self.default)
        return str(self.default)


def keys(cls: type[Any], *, optional: bool = False) -> list[KeyInfo]:
    """Every key of a section, nested sections flattened: type, default, bounds."""
    rows: list[KeyInfo] = []
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        hint = _optional_dataclass(hints[spec.name])
        if dataclasses.is_dataclass(hint):
            inner = optional or hint is not hints[spec.name] or \
                spec.default is not dataclasses.MISSING or \
                spec.default_factory is not dataclasses.MISSING
            rows += [dataclasses.replace(k, key=f"{spec.name}.{k.key}")
                     for k in keys(hint, optional=inner)]  # type: ignore[arg-type]
            continue
        required = spec.default is dataclasses.MISSING and \
            spec.default_factory is dataclasses.MISSING
        factory: Any = spec.default_factory
        default = None if required else (
            factory() if spec.default is dataclasses.MISSING else spec.default)
        rows.append(KeyInfo(spec.name, readable_type(hints[spec.name]), required,
                            _plain(default), spec.metadata.get("minimum"),
                            spec.metadata.get("maximum"),
                            spec.metadata.get("description", ""), optional))
    return rows


def readable_type(hint: Any) -> str:
    """A type as a technician reads it: text, integer, path, one of fail_safe | fail_secure."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(readable_type(a) for a in options) + " (or left out)"
    if origin in (list, tuple, frozenset, set):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return "list of " + (readable_type(args[0]) if args else "values")
    if origin in (dict, Mapping):
        return "table"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + " | ".join(str(m.value) for m in hint)
    names = {str: "text", int: "integer", float: "number", bool: "true/false", Path: "path"}
    if hint in names:
        return names[hint]
    return _type_name(hint)


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | frozenset | set):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value):
        return None
    return value


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _optional_dataclass(hint: Any) -> Any:
    """The dataclass of an optional section (``X | None``), else `hint` unchanged."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(options) == 1 and dataclasses.is_dataclass(options[0]):
            return options[0]
    return hint


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint)).replace("typing.", "")


def _check_bounds(spec: dataclasses.Field[Any], value: Any, key_path: str) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    low, high = spec.metadata.get("minimum"), spec.metadata.get("maximum")
    if low is not None and value < low:
        raise ConfigError(f"{key_path}: must be at least {low}, got {value}")
    if high is not None and value > high:
        raise ConfigError(f"{key_path}: must be at most {high}, got {value}")


def _convert(hint: Any, value: Any, key_path: str, base_dir: Path | None) -> Any:
    if hint is Any:
        return value  # the section's own check says what it accepts
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(options) == 1:
            return _convert(options[0], value, key_path, base_dir)
        raise TypeError(f"unsupported config type {hint}")
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key_path, base_dir=base_dir)  # type: ignore[arg-type]
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{key_path}: must be an array, got {_kind(value)}")
        (item,) = typing.get_args(hint)[:1]
        items: list[Any] = []
        problems: list[str] = []
        for i, v in enumerate(value):
            try:
                items.append(_convert(item, v, f"{key_path}[{i}]", base_dir))
            except ConfigError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ConfigError(problems=tuple(problems))
        return tuple(items)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        choices = [m.value for m in hint]
        if value not in choices:
            raise ConfigError(
                f"{key_path}: must be one of {', '.join(map(str, choices))}, got {value!r}"
            )
        return hint(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key_path}: must be true or false, got {_kind(value)}")
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{key_path}: must be an integer, got {_kind(value)}")
        return value
    if hint is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{key_path}: must be a number, got {_kind(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key_path}: must be a string, got {_kind(value)}")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key_path}: must be a path (a non-empty string)")
        path = Path(value).expanduser()
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        return path
    raise TypeError(f"unsupported config type {hint} at {key_path}")
