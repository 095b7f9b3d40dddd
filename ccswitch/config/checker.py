"""The YAML reader and problem report every config file goes through.

:class:`_Checker` reads one file with :class:`_Loader`, a safe YAML loader whose
mappings and sequences (:class:`_Map`, :class:`_Seq`) remember their line numbers,
and records each problem as a :class:`~ccswitch.errors.ConfigError` naming the
file, the dotted key and the reason (with the line when it is known) in a shared
:class:`_Report`. :func:`_section` checks the keys of one mapping and
:class:`_Section` its scalar values. Loading goes on after a problem, so one run
reports them all (:class:`ConfigErrors`).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Collection, Final, Sequence

import attrs
import yaml

from ccswitch.errors import ConfigError
from ccswitch.model import Config

FILE_KEY: Final = "<file>"
"""The key used for problems with a file as a whole (unreadable, empty, not a mapping)."""

EXTENSION_PREFIX: Final = "x-"
"""Top-level dialplan keys with this prefix are ignored: use them to hold YAML anchors."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class ConfigErrors(ConfigError):
    """Every problem found in one load; ``str()`` lists one ``file: key: reason`` per line."""

    error_id = "config.invalid"

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        if not errors:
            raise ValueError("ConfigErrors needs at least one error")
        self.errors: list[ConfigError] = list(errors)
        first = self.errors[0]
        super().__init__(first.file, first.key, first.reason)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


@attrs.frozen(kw_only=True)
class CheckResult:
    """What ``ccswitch check`` reports: the config (None if any error), errors, warnings."""

    config: Config | None
    errors: list[ConfigError] = attrs.Factory(list)
    warnings: list[str] = attrs.Factory(list)

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.errors


# -- YAML with line numbers ------------------------------------------------------------


class _Map(dict[Any, Any]):
    """A YAML mapping that remembers its line, each key's line and repeated keys."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}
        self.duplicates: list[tuple[Any, int]] = []


class _Seq(list[Any]):
    """A YAML sequence that remembers its line and each item's line."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` building :class:`_Map` / :class:`_Seq` (still only safe types)."""


_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


def _construct_map(loader: yaml.SafeLoader, node: yaml.Node) -> _Map:
    assert isinstance(node, yaml.MappingNode)
    own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
    loader.flatten_mapping(node)
    merged = len(node.value) - own  # pairs from '<<' come first and may be overridden
    result = _Map(node.start_mark.line + 1)
    own_keys: set[Any] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                "found an unhashable key", key_node.start_mark)
        line = key_node.start_mark.line + 1
        if index < merged:
            result.key_lines.setdefault(key, line)
        elif key in own_keys:
            result.duplicates.append((key, line))
        else:
            own_keys.add(key)
            result.key_lines[key] = line
        result[key] = loader.construct_object(value_node, deep=True)
    return result


def _construct_seq(loader: yaml.SafeLoader, node: yaml.Node) -> _Seq:
    assert isinstance(node, yaml.SequenceNode)
    result = _Seq(node.start_mark.line + 1)
    for item in node.value:
        result.append(loader.construct_object(item, deep=True))
        result.item_lines.append(item.start_mark.line + 1)
    return result


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


class _Failed:
    """Marker: the file could not be read or parsed (the error is already recorded)."""


_FAILED: Final = _Failed()


# -- error collection ------------------------------------------------------------------


@attrs.define
class _Report:
    errors: list[ConfigError] = attrs.Factory(list)
    warnings: list[str] = attrs.Factory(list)


def _where(line: int | None) -> str:
    return f" (line {line})" if line else ""


@attrs.define
class _Checker:
    """Records problems found in one file."""

    file: str
    report: _Report

    def error(self, key: str, reason: str, line: int | None = None) -> None:
        self.report.errors.append(ConfigError(self.file, key, reason + _where(line)))

    def warn(self, key: str, reason: str, line: int | None = None) -> None:
        self.report.warnings.append(f"{self.file}: {key}: {reason}{_where(line)}")

    def read_yaml(self, path: Path) -> object:
        """The parsed YAML of ``path``, or ``_FAILED`` after recording why not."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.error(FILE_KEY, "file does not exist")
            return _FAILED
        except IsADirectoryError:
            self.error(FILE_KEY, "is a directory, not a YAML file")
            return _FAILED
        except UnicodeDecodeError as e:
            self.error(FILE_KEY, f"is not UTF-8 text (byte {e.start})")
            return _FAILED
        except OSError as e:
            self.error(FILE_KEY, f"cannot read: {e.strerror or e}")
            return _FAILED
        try:
            return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            problem = e.problem or e.context or "invalid YAML"
            if mark is None:
                self.error(FILE_KEY, f"YAML syntax error: {problem}")
            else:
                self.error(f"line {mark.line + 1}",
                           f"YAML syntax error: {problem} (column {mark.column + 1})")
            return _FAILED
        except yaml.YAMLError as e:
            self.error(FILE_KEY, f"YAML error: {e}")
            return _FAILED


def _join(path: str, name: object) -> str:
    return f"{path}.{name}" if path else str(name)


def _kind(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


@attrs.define
class _Section:
    """One YAML mapping being validated, with its dotted path in the file."""

    ck: _Checker
    data: _Map
    path: str

    def key(self, name: str) -> str:
        return _join(self.path, name)

    def line(self, name: str) -> int:
        return self.data.key_lines.get(name, self.data.line)

    def error(self, name: str, reason: str) -> None:
        self.ck.error(self.key(name), reason, self.line(name))

    def warn(self, name: str, reason: str) -> None:
        self.ck.warn(self.key(name), reason, self.line(name))

    def has(self, name: str) -> bool:
        return name in self.data

    def string(self, name: str, *, required: bool = False, what: str = "a string") -> str | None:
        if name not in self.data:
            return None
        value = self.data[name]
        if not isinstance(value, str):
            self.error(name, f"must be {what}, not {_kind(value)}")
            return None
        if not value.strip():
            self.error(name, f"must be {what}, not empty")
            return None
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            self.error(name, "must not contain control characters or line breaks")
            return None
        return value

    def number(self, name: str, *, minimum: float, inclusive: bool) -> float | None:
        if name not in self.data:
            return None
        value = self.data[name]
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.error(name, f"must be a number of seconds {bound}, not {_kind(value)}")
            return None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            self.error(name, f"must be a number of seconds {bound}, got {value!r}")
            return None
        return float(value)

    def integer(self, name: str, *, minimum: int, maximum: int | None = None) -> int | None:
        if name not in self.data:
            return None
        value = self.data[name]
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(name, f"must be a whole number {bounds}, not {_kind(value)}")
            return None
        if value < minimum or (maximum is not None and value > maximum):
            self.error(name, f"must be a whole number {bounds}, got {value}")
            return None
        return value

    def boolean(self, name: str) -> bool | None:
        if name not in self.data:
            return None
        value = self.data[name]
        if not isinstance(value, bool):
            self.error(name, f"must be true or false, not {_kind(value)}")
            return None
        return value


def _section(ck: _Checker, value: object, path: str, line: int, *,
             allowed: Collection[str], required: Collection[str] = (),
             what: str = "a mapping", extensions: bool = False) -> _Section | None:
    """Check that ``value`` is a mapping with only ``allowed`` keys and every ``required`` one.

    With ``extensions``, keys starting with ``x-`` are ignored (holders for YAML anchors).
    """
    key = path or FILE_KEY
    if not isinstance(value, _Map):
        ck.error(key, f"must be {what}, not {_kind(value)}", line)
        return None
    for dup, dup_line in value.duplicates:
        ck.error(_join(path, dup), "is given more than once in this mapping", dup_line)
    for name in value:
        if not isinstance(name, str):
            ck.error(_join(path, name), f"key must be a string, not {_kind(name)}",
                     value.key_lines.get(name, value.line))
        elif name not in allowed and not (extensions and name.startswith(EXTENSION_PREFIX)):
            close = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else (
                f" (allowed: {', '.join(sorted(allowed))})")
            ck.error(_join(path, name), f"unknown key{hint}", value.key_lines.get(name, line))
    for name in required:
        if name not in value:
            ck.error(_join(path, name), "is required", value.line)
    return _Section(ck=ck, data=value, path=path)


def _named_entries(ck: _Checker, value: object, path: str, line: int, what: str
                   ) -> list[tuple[str, object, int]]:
    """The (name, value, line) entries of a name->definition mapping, names checked."""
    if value is None:
        return []
    if not isinstance(value, _Map):
        ck.error(path, f"must be a mapping of {what} names to definitions, not {_kind(value)}",
                 line)
        return []
    for dup, dup_line in value.duplicates:
        ck.error(_join(path, dup), f"{what} {dup!r} is defined more than once in this file",
                 dup_line)
    entries = []
    for name, item in value.items():
        name_line = value.key_lines.get(name, value.line)
        if not isinstance(name, str):
            ck.error(_join(path, name), f"{what} name must be a string, not {_kind(name)} "
                     "(quote it)", name_line)
        elif not _NAME.fullmatch(name):
            ck.error(_join(path, name), f"{what} name must be 1-64 letters, digits, '_', '-' "
                     "or '.', starting with a letter or digit", name_line)
        else:
            entries.append((name, item, name_line))
    return entries


def _display(path: Path) -> str:
    """``path`` as shown in messages: relative to the working directory when under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
