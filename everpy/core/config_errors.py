"""Configuration problems: one `ConfigIssue` per problem, all of them carried by one `ConfigError`.

Every loader step (YAML, definitions, manifests, run config) collects issues instead of stopping at
the first one, so a user fixing a config sees the whole list in one go.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jsonschema
import jsonschema.exceptions

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

    from everpy.core.yamlsrc import LineMap

PathPart = str | int


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in one file, located by line and key path."""

    file: str
    line: int | None
    key_path: str
    message: str
    expected: str | None = None
    given: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        location = self.file if self.line is None else f"{self.file}:{self.line}"
        text = f"{location}: {self.key_path}: {self.message}" if self.key_path else f"{location}: {self.message}"
        details = []
        if self.expected is not None:
            details.append(f"expected {self.expected}")
        if self.given is not None:
            details.append(f"given: {self.given}")
        if details:
            text += f" ({', '.join(details)})"
        if self.hint:
            text += f"; {self.hint}"
        return text


class ConfigError(Exception):
    """Raised with every issue found; `str()` lists them one per line."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues: list[ConfigIssue] = list(issues)
        super().__init__(self._render())

    def _render(self) -> str:
        if len(self.issues) == 1:
            return str(self.issues[0])
        lines = [f"{len(self.issues)} configuration problems:"]
        lines.extend(str(issue) for issue in self.issues)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._render()


def format_path(path: Iterable[PathPart]) -> str:
    """`["active_modules", "evse", "connections", "bsp", 0]` -> `active_modules.evse.connections.bsp[0]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text = f"{text}.{part}" if text else str(part)
    return text


def show_value(value: Any, limit: int = 60) -> str:
    """Short, unambiguous rendering of a user-given value for messages."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def type_name(value: Any) -> str:
    """JSON-schema vocabulary for the type of a Python value from YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def one_of(candidates: Iterable[Any], limit: int = 12) -> str:
    names = [show_value(c) for c in candidates]
    if not names:
        return "nothing (none defined)"
    if len(names) > limit:
        names = names[:limit] + [f"... {len(names) - limit} more"]
    return "one of: " + ", ".join(names)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean {matches[0]!r}?" if matches else None


class IssueCollector:
    """Collects issues for one file; knows the file's line map so callers only pass key paths."""

    def __init__(self, file: str, lines: LineMap | None = None, sink: list[ConfigIssue] | None = None) -> None:
        self.file = file
        self.lines = lines
        self.issues: list[ConfigIssue] = sink if sink is not None else []

    def add(
        self,
        path: Sequence[PathPart],
        message: str,
        expected: str | None = None,
        given: str | None = None,
        hint: str | None = None,
        line: int | None = None,
    ) -> None:
        if line is None and self.lines is not None:
            line = self.lines.line(path)
        self.issues.append(ConfigIssue(self.file, line, format_path(path), message, expected, given, hint))

    def unknown_key(self, path: Sequence[PathPart], key: str, known: Iterable[str], what: str = "key") -> None:
        known = sorted(known)
        self.add(
            [*path, key],
            f"unknown {what} {key!r}",
            expected=one_of(known),
            given=show_value(key),
            hint=did_you_mean(key, known),
        )

    def has_issue_within(self, path: Sequence[PathPart]) -> bool:
        """True if this file already has an issue at `path` or below it (used to check the contents of
        a broken part no further, so a single mistake is reported once)."""
        prefix = format_path(path)
        return any(
            issue.file == self.file
            and (issue.key_path == prefix or issue.key_path.startswith((prefix + ".", prefix + "[")) or not prefix)
            for issue in self.issues
        )

    def raise_if_any(self) -> None:
        if self.issues:
            raise ConfigError(self.issues)

    def schema_errors(self, validator: Validator, instance: Any, path: Sequence[PathPart] = ()) -> bool:
        """Validate `instance` and add one issue per schema violation; True if it was valid."""
        valid = True
        for error in sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]):
            valid = False
            self._add_schema_error(error, list(path))
        return valid

    def _add_schema_error(self, error: jsonschema.ValidationError, base: list[PathPart]) -> None:
        where = [*base, *error.absolute_path]
        keyword = error.validator
        # The schema keyword's value, any JSON. The stubs add Unset (jsonschema's "not given" sentinel for
        # hand-built errors); errors from iter_errors always carry it.
        value: Any = error.validator_value
        instance = error.instance
        given = show_value(instance)
        if keyword == "type" and instance is not None:
            given = f"{type_name(instance)} {given}"
        if keyword == "additionalProperties" and isinstance(instance, dict):
            schema = error.schema if isinstance(error.schema, dict) else {}
            known = schema.get("properties", {})
            patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
            for key in instance:
                if key in known or any(p.search(str(key)) for p in patterns):
                    continue
                if known or not patterns:
                    self.unknown_key(where, str(key), known)
                else:
                    self.add(
                        [*where, key],
                        f"invalid name {str(key)!r}",
                        expected="a name matching " + " or ".join(p.pattern for p in patterns),
                        given=show_value(key),
                    )
        elif keyword == "required" and isinstance(instance, dict):
            for key in value:
                if key not in instance:
                    self.add(where, f"missing required key {key!r}", expected=f"key {key!r}")
        elif keyword == "type":
            expected = " or ".join(value) if isinstance(value, list) else str(value)
            self.add(where, "wrong type", expected=expected, given=given)
        elif keyword == "enum":
            hint = did_you_mean(instance, [str(v) for v in value]) if isinstance(instance, str) else None
            self.add(where, "value not allowed", expected=one_of(value), given=given, hint=hint)
        elif keyword == "const":
            self.add(where, "value not allowed", expected=show_value(value), given=given)
        elif keyword in _BOUND_TEXT:
            self.add(where, "value out of range", expected=f"{_BOUND_TEXT[keyword]} {value}", given=given)
        elif keyword in _SIZE_TEXT:
            self.add(where, _SIZE_TEXT[keyword][0], expected=_SIZE_TEXT[keyword][1].format(value), given=given)
        elif keyword == "pattern":
            self.add(where, "string does not match the pattern", expected=f"a string matching {value}", given=given)
        elif keyword in ("anyOf", "oneOf") and error.context:
            best = jsonschema.exceptions.best_match(error.context)
            self._add_schema_error(best, base)
        else:
            self.add(where, error.message, given=given)


_BOUND_TEXT = {
    "minimum": ">=",
    "maximum": "<=",
    "exclusiveMinimum": ">",
    "exclusiveMaximum": "<",
    "multipleOf": "a multiple of",
}
_SIZE_TEXT = {
    "minLength": ("string too short", "at least {} characters"),
    "maxLength": ("string too long", "at most {} characters"),
    "minItems": ("too few items", "at least {} items"),
    "maxItems": ("too many items", "at most {} items"),
    "minProperties": ("too few entries", "at least {} entries"),
    "maxProperties": ("too many entries", "at most {} entries"),
    "uniqueItems": ("items are not unique", "unique items"),
}
