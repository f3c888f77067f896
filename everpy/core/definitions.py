"""Interface, type and error definitions (EVerest formats) and the validators built from them.

A definitions directory may hold `interfaces/`, `types/` and `errors/` subfolders of `*.yaml` files;
the file name (without `.yaml`) is the interface name / type file / error namespace. Later
directories may add files, but defining the same name twice is an error.

Validators for command arguments/results and vars are compiled on first use and cached: `$ref`s to
types are inlined once, so validating a call does not resolve references again.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.exceptions
import referencing
import referencing.jsonschema

from everpy.core.config_errors import (
    ConfigError,
    ConfigIssue,
    IssueCollector,
    PathPart,
    did_you_mean,
    one_of,
    show_value,
)
from everpy.core.manifest import ID_PATTERN
from everpy.core.yamlsrc import LineMap, load_yaml

ERROR_NAME_PATTERN = r"^[A-Z][A-Za-z0-9]*$"
ERROR_NAMESPACE_PATTERN = r"^[a-z][a-zA-Z0-9_]*$"
_TYPE_REF = re.compile(r"^/([A-Za-z0-9_.-]+)#/(.+)$")
_ERROR_REF = re.compile(r"^/errors/([a-z][a-zA-Z0-9_]*)(?:#/([A-Z][A-Za-z0-9]*))?$")

_META = jsonschema.Draft7Validator(jsonschema.Draft7Validator.META_SCHEMA)

# --- file format schemas (what an interface / types / errors file may contain) -----------------------

_DESCRIPTION = {"type": "string", "minLength": 2}
_ERRORS_FILE = {
    "type": "object",
    "required": ["description"],
    "properties": {
        "description": _DESCRIPTION,
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "description"],
                "properties": {
                    "name": {"type": "string", "pattern": ERROR_NAME_PATTERN},
                    "description": _DESCRIPTION,
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
_TYPES_FILE = {
    "type": "object",
    "required": ["description"],
    "properties": {
        "description": _DESCRIPTION,
        "types": {
            "type": "object",
            "patternProperties": {ID_PATTERN: {"type": "object"}},
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
_INTERFACE_FILE = {
    "type": "object",
    "required": ["description"],
    "properties": {
        "description": _DESCRIPTION,
        "cmds": {
            "type": "object",
            "patternProperties": {
                ID_PATTERN: {
                    "type": "object",
                    "required": ["description"],
                    "properties": {
                        "description": _DESCRIPTION,
                        "arguments": {
                            "type": "object",
                            "patternProperties": {ID_PATTERN: {"type": "object"}},
                            "additionalProperties": False,
                        },
                        "result": {"type": "object"},
                    },
                    "additionalProperties": False,
                }
            },
            "additionalProperties": False,
        },
        "vars": {
            "type": "object",
            "patternProperties": {ID_PATTERN: {"type": "object"}},
            "additionalProperties": False,
        },
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["reference"],
                "properties": {"reference": {"type": "string"}},
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
_FILE_VALIDATORS = {
    kind: jsonschema.Draft7Validator(schema)
    for kind, schema in (("errors", _ERRORS_FILE), ("types", _TYPES_FILE), ("interfaces", _INTERFACE_FILE))
}


# --- data model --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorDef:
    name: str
    namespace: str
    description: str

    @property
    def type(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class CmdDef:
    name: str
    description: str
    arguments: dict[str, dict]
    result: dict | None


@dataclass
class Interface:
    name: str
    description: str
    cmds: dict[str, CmdDef]
    vars: dict[str, dict]
    errors: dict[str, dict[str, ErrorDef]]
    error_types: frozenset[str]
    file: str = ""


class SchemaViolation(jsonschema.ValidationError):
    """A value that does not match its interface schema; the message names what and where."""


ValueCheck = Callable[[Any], None]


@dataclass
class Definitions:
    """All loaded definitions. Treat as read-only: loaded objects are cached and shared."""

    interfaces: dict[str, Interface] = field(default_factory=dict)
    types: dict[str, dict[str, dict]] = field(default_factory=dict)
    errors: dict[str, dict[str, ErrorDef]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # "interfaces/<name>" etc. -> path
    _cmd_cache: dict[tuple[str, str], tuple[ValueCheck, ValueCheck]] = field(default_factory=dict, repr=False)
    _var_cache: dict[tuple[str, str], ValueCheck] = field(default_factory=dict, repr=False)
    _inlined: dict[tuple[str, str], dict] = field(default_factory=dict, repr=False)
    _registry: referencing.Registry | None = field(default=None, repr=False)
    _broken: set[str] = field(default_factory=set, repr=False)  # "types/<name>" files that failed to load
    _check_schemas: bool = field(default=True, repr=False)

    # -- lookups with clear errors --

    def interface(self, name: str) -> Interface:
        try:
            return self.interfaces[name]
        except KeyError:
            raise KeyError(f"unknown interface {name!r} ({one_of(sorted(self.interfaces))})") from None

    def cmd(self, interface: str, cmd: str) -> CmdDef:
        iface = self.interface(interface)
        try:
            return iface.cmds[cmd]
        except KeyError:
            raise KeyError(f"interface {interface!r} has no command {cmd!r} ({one_of(sorted(iface.cmds))})") from None

    # -- validators --

    def cmd_validators(self, interface: str, cmd: str) -> tuple[Callable[[dict], None], ValueCheck]:
        """(check_arguments(args_dict), check_result(value)); each raises SchemaViolation."""
        key = (interface, cmd)
        cached = self._cmd_cache.get(key)
        if cached is None:
            definition = self.cmd(interface, cmd)
            arguments_schema = {
                "type": "object",
                "properties": {name: self.inline_refs(s) for name, s in definition.arguments.items()},
                "required": sorted(definition.arguments),
                "additionalProperties": False,
            }
            result_schema = {"type": "null"} if definition.result is None else self.inline_refs(definition.result)
            cached = (
                self._make_check(arguments_schema, f"{interface}.{cmd} arguments"),
                self._make_check(result_schema, f"{interface}.{cmd} result"),
            )
            self._cmd_cache[key] = cached
        return cached

    def var_validator(self, interface: str, var: str) -> ValueCheck:
        key = (interface, var)
        cached = self._var_cache.get(key)
        if cached is None:
            iface = self.interface(interface)
            if var not in iface.vars:
                raise KeyError(f"interface {interface!r} has no var {var!r} ({one_of(sorted(iface.vars))})")
            cached = self._make_check(self.inline_refs(iface.vars[var]), f"{interface} var {var}")
            self._var_cache[key] = cached
        return cached

    def _make_check(self, schema: dict, what: str) -> ValueCheck:
        if _contains_ref(schema):  # only recursive types keep a $ref; those need the registry
            validator = jsonschema.Draft7Validator(schema, registry=self.registry())
        else:
            validator = jsonschema.Draft7Validator(schema)
        iter_errors = validator.iter_errors
        quick_accept = compile_quick_accept(schema)

        def check(value: Any) -> None:
            if quick_accept is not None and quick_accept(value):
                return
            error = next(iter_errors(value), None)
            if error is not None:
                best = jsonschema.exceptions.best_match(iter_errors(value))
                raise SchemaViolation(f"{what}: {_describe(best)}")

        return check

    def registry(self) -> referencing.Registry:
        """Type files as JSON-schema resources at `/<typefile>`, so `$ref: /<file>#/<Type>` resolves."""
        if self._registry is None:
            draft7 = referencing.jsonschema.DRAFT7
            self._registry = referencing.Registry().with_resources(
                (f"/{name}", draft7.create_resource(types)) for name, types in self.types.items()
            )
        return self._registry

    def inline_refs(self, schema: Any) -> Any:
        """Copy of `schema` with every `/<file>#/<Type>` reference replaced by the type's schema.

        Draft-07 ignores keywords next to `$ref`, so the replacement is exact. A reference back into a
        type that is being inlined (a recursive type) stays a `$ref` and is resolved via `registry()`.
        """
        return self._inline(schema, ())

    def _inline(self, schema: Any, active: tuple[tuple[str, str], ...]) -> Any:
        if isinstance(schema, list):
            return [self._inline(item, active) for item in schema]
        if not isinstance(schema, dict):
            return schema
        ref = schema.get("$ref")
        if isinstance(ref, str):
            match = _TYPE_REF.match(ref)
            if match:
                key = (match.group(1), match.group(2))
                if key in active:
                    return schema
                cached = self._inlined.get(key)
                if cached is not None:
                    return cached
                target = _resolve_pointer(self.types.get(key[0]), key[1])
                if target is not None:
                    inlined = self._inline(target, (*active, key))
                    if not _contains_ref(inlined):
                        self._inlined[key] = inlined
                    return inlined
        return {k: self._inline(v, active) for k, v in schema.items()}


# --- quick acceptance ----------------------------------------------------------------------------------
#
# Validators run on every command and var, and jsonschema walks a schema slowly (~10 us per keyword
# level). Interface schemas use a small set of keywords, so they are also compiled into plain Python
# predicates. A predicate only ever *accepts*: True means jsonschema would accept too; False (or a
# schema using anything not handled here, which compiles to None) falls back to jsonschema, which
# decides and words the error. Soundness of each check is what matters, not completeness.

Predicate = Callable[[Any], bool]
# Keywords that never reject a value under draft-07 (annotations; `format` is not asserted by default).
_NON_ASSERTING = frozenset(
    {"description", "title", "$comment", "examples", "default", "qos", "format", "readOnly", "writeOnly"}
)


def _is_plain_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _outside_number_keywords(value: Any) -> bool:
    """True if numeric keywords do not apply to `value` (jsonschema ignores them for non-numbers)."""
    return isinstance(value, bool) or not isinstance(value, numbers.Number)


_TYPE_PREDICATES: dict[str, Predicate] = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "number": _is_plain_number,
    "integer": lambda v: type(v) is int or (type(v) is float and v.is_integer()),
}


def _number_bound(keyword: str, bound: float) -> Predicate:
    compare: Callable[[Any], bool] = {
        "minimum": lambda v: v >= bound,
        "maximum": lambda v: v <= bound,
        "exclusiveMinimum": lambda v: v > bound,
        "exclusiveMaximum": lambda v: v < bound,
    }[keyword]
    return lambda v: compare(v) if _is_plain_number(v) else _outside_number_keywords(v)


def _when(kind: type, check: Predicate) -> Predicate:
    """Apply `check` to values of exactly `kind`; other values pass only if jsonschema would skip them
    too (a dict/list subclass or other Mapping is left to jsonschema)."""
    if kind is dict:
        return lambda v: check(v) if type(v) is dict else not isinstance(v, Mapping)
    if kind is list:
        return lambda v: check(v) if type(v) is list else not isinstance(v, list)
    return lambda v: check(v) if isinstance(v, kind) else True


def compile_quick_accept(schema: Any) -> Predicate | None:
    """A predicate that returns True only for values the draft-07 `schema` accepts, or None if the
    schema uses keywords this compiler does not handle."""
    if schema is True:
        return lambda v: True
    if not isinstance(schema, dict):
        return None
    checks: list[Predicate] = []
    properties = schema.get("properties", {})
    for keyword, value in schema.items():
        if keyword in _NON_ASSERTING:
            continue
        check = _compile_keyword(keyword, value, properties, schema)
        if check is None:
            return None
        checks.append(check)
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(check(v) for check in checks)


def _compile_keyword(keyword: str, value: Any, properties: Any, schema: dict) -> Predicate | None:
    if keyword == "type":
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) and n in _TYPE_PREDICATES for n in names):
            return None
        predicates = [_TYPE_PREDICATES[n] for n in names]
        return predicates[0] if len(predicates) == 1 else lambda v: any(p(v) for p in predicates)
    if keyword == "enum" and isinstance(value, list) and value and all(isinstance(x, str) for x in value):
        allowed = frozenset(value)
        return lambda v: isinstance(v, str) and v in allowed
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") and _is_plain_number(value):
        return _number_bound(keyword, value)
    if keyword in ("minLength", "maxLength") and type(value) is int:
        if keyword == "minLength":
            return _when(str, lambda v: len(v) >= value)
        return _when(str, lambda v: len(v) <= value)
    if keyword == "pattern" and isinstance(value, str):
        try:
            regex = re.compile(value)
        except re.error:
            return None
        return _when(str, lambda v: regex.search(v) is not None)
    if keyword in ("minItems", "maxItems") and type(value) is int:
        if keyword == "minItems":
            return _when(list, lambda v: len(v) >= value)
        return _when(list, lambda v: len(v) <= value)
    if keyword in ("minProperties", "maxProperties") and type(value) is int:
        if keyword == "minProperties":
            return _when(dict, lambda v: len(v) >= value)
        return _when(dict, lambda v: len(v) <= value)
    if keyword == "items" and not isinstance(value, list):
        item = compile_quick_accept(value)
        return None if item is None else _when(list, lambda v: all(item(x) for x in v))
    if keyword == "required" and isinstance(value, list):
        return _when(dict, lambda v: all(name in v for name in value))
    if keyword == "properties" and isinstance(value, dict):
        compiled = {name: compile_quick_accept(sub) for name, sub in value.items()}
        if any(p is None for p in compiled.values()):
            return None
        pairs = list(compiled.items())
        return _when(dict, lambda v: all(name not in v or p(v[name]) for name, p in pairs))  # type: ignore[misc]
    if keyword == "additionalProperties" and "patternProperties" not in schema and isinstance(properties, dict):
        known = frozenset(properties)
        if value is False:
            return _when(dict, lambda v: all(name in known for name in v))
        extra = compile_quick_accept(value)
        if extra is None:
            return None
        return _when(dict, lambda v: all(name in known or extra(item) for name, item in v.items()))
    return None


def _describe(error: jsonschema.ValidationError) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    return f"{where}: {error.message}" if where else error.message


def _contains_ref(schema: Any) -> bool:
    if isinstance(schema, dict):
        return "$ref" in schema or any(_contains_ref(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_contains_ref(v) for v in schema)
    return False


def _resolve_pointer(document: Any, pointer: str) -> Any:
    node = document
    for raw in pointer.split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _walk_refs(node: Any, path: list[PathPart]) -> Iterator[tuple[list[PathPart], str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield [*path, key], value
            else:
                yield from _walk_refs(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk_refs(value, [*path, index])


# --- loading -----------------------------------------------------------------------------------------

_KINDS = ("errors", "types", "interfaces")
_KIND_LABEL = {"errors": "error file", "types": "type file", "interfaces": "interface"}
_cache: dict[tuple, Definitions] = {}
_CACHE_SIZE = 4


def _definition_files(dirs: Sequence[Path], collector: IssueCollector) -> dict[str, list[tuple[str, Path]]]:
    """kind -> [(name, path)], reporting names defined in more than one directory."""
    found: dict[str, list[tuple[str, Path]]] = {kind: [] for kind in _KINDS}
    seen: dict[tuple[str, str], Path] = {}
    for directory in dirs:
        directory = Path(directory)
        if not directory.is_dir():
            collector.issues.append(ConfigIssue(str(directory), None, "", "definitions directory does not exist"))
            continue
        for kind in _KINDS:
            sub = directory / kind
            if not sub.is_dir():
                continue
            for path in sorted(sub.glob("*.yaml")):
                name = path.stem
                first = seen.get((kind, name))
                if first is not None:
                    collector.issues.append(
                        ConfigIssue(
                            str(path), None, "", f"{_KIND_LABEL[kind]} {name!r} is defined twice (first in {first})"
                        )
                    )
                    continue
                seen[(kind, name)] = path
                found[kind].append((name, path))
    return found


def load_definitions(dirs: Sequence[Path | str], check_schemas: bool = True) -> Definitions:
    """Load and check every interface/type/error file under `dirs`; ConfigError lists all problems.

    The result is cached per directory list as long as no file changed (same mtime and size), so
    repeated loads (check then run, many tests) cost only a directory scan.

    `check_schemas=False` skips validating every schema against the JSON-schema metaschema (about half
    of the load time); for processes whose parent already loaded the same files with the full check.
    File structure, required keys and references are checked either way.
    """
    paths = [Path(d) for d in dirs]
    collector = IssueCollector("<definitions>")
    files = _definition_files(paths, collector)
    signature = tuple(
        (kind, name, str(path), path.stat().st_mtime_ns, path.stat().st_size)
        for kind in _KINDS
        for name, path in files[kind]
    )
    cache_key = (tuple(str(d) for d in paths), signature)
    if not collector.issues:
        for checked in (True,) if check_schemas else (True, False):
            if (*cache_key, checked) in _cache:
                return _cache[(*cache_key, checked)]

    definitions = Definitions()
    definitions._check_schemas = check_schemas
    parsed: dict[str, list[tuple[str, Path, Any, LineMap]]] = {kind: [] for kind in _KINDS}
    for kind in _KINDS:
        for name, path in files[kind]:
            try:
                data, lines = load_yaml(path)
            except ConfigError as exc:
                collector.issues.extend(exc.issues)
                definitions._broken.add(f"{kind}/{name}")
                continue
            file_issues = IssueCollector(str(path), lines, collector.issues)
            if not file_issues.schema_errors(_FILE_VALIDATORS[kind], data):
                # A reference into this file that fails would only repeat its problem; silence those.
                definitions._broken.add(f"{kind}/{name}")
                if not isinstance(data, dict):
                    continue
            parsed[kind].append((name, path, data, lines))
            definitions.files[f"{kind}/{name}"] = str(path)

    # Files with structural problems are still used as far as they are well-formed, so that their
    # other problems (and those of files referring to them) show up in the same run.
    for name, path, data, lines in parsed["errors"]:
        file_issues = IssueCollector(str(path), lines, collector.issues)
        definitions.errors[name] = {
            entry["name"]: ErrorDef(entry["name"], name, entry["description"])
            for index, entry in enumerate(_as_list(data.get("errors")))
            if not file_issues.has_issue_within(["errors", index])
        }
        _check_error_namespace(name, file_issues)
    for name, _path, data, _lines in parsed["types"]:
        definitions.types[name] = _as_dict(data.get("types"))
    for _name, path, data, lines in parsed["types"]:
        file_issues = IssueCollector(str(path), lines, collector.issues)
        for type_name, schema in _as_dict(data.get("types")).items():
            if not file_issues.has_issue_within(["types", type_name]):
                _check_schema(schema, ["types", type_name], file_issues, "type", definitions)
    for name, path, data, lines in parsed["interfaces"]:
        file_issues = IssueCollector(str(path), lines, collector.issues)
        interface = _build_interface(name, str(path), data, file_issues, definitions)
        if interface is not None:
            definitions.interfaces[name] = interface

    if collector.issues:
        raise ConfigError(sorted(collector.issues, key=lambda issue: (issue.file, issue.line or 0)))
    if len(_cache) >= _CACHE_SIZE:  # a few sets at most: a process normally uses one
        del _cache[next(iter(_cache))]
    _cache[(*cache_key, check_schemas)] = definitions
    return definitions


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _check_error_namespace(name: str, issues: IssueCollector) -> None:
    if not re.match(ERROR_NAMESPACE_PATTERN, name):
        issues.add([], f"invalid error file name {name!r}", expected=f"a name matching {ERROR_NAMESPACE_PATTERN}")


def _check_schema(
    schema: dict, path: list[PathPart], issues: IssueCollector, what: str, definitions: Definitions
) -> None:
    """One argument/result/var/type schema: type+description present, no default, a valid draft-07
    schema, every `$ref` resolvable."""
    for key in ("type", "description"):
        if key not in schema:
            issues.add(path, f"{what} schema lacks {key!r}", expected=f"key {key!r}")
    if what in ("argument", "result") and schema.get("type") == "null":
        issues.add([*path, "type"], f"{what} type must not be null", expected="a non-null type", given="'null'")
    if what in ("argument", "var") and "default" in schema:
        issues.add([*path, "default"], f"default values are not allowed in {what} schemas")
    if what == "var" and "qos" in schema:
        qos = schema["qos"]
        if not isinstance(qos, int) or isinstance(qos, bool) or not 0 <= qos <= 2:
            issues.add([*path, "qos"], "invalid qos", expected="an integer 0..2", given=show_value(qos))
    if definitions._check_schemas:
        issues.schema_errors(_META, schema, path)
    for ref_path, ref in _walk_refs(schema, list(path)):
        match = _TYPE_REF.match(ref)
        if not match:
            issues.add(ref_path, "unsupported reference", expected="'/<typefile>#/<TypeName>'", given=show_value(ref))
            continue
        file, pointer = match.groups()
        if f"types/{file}" in definitions._broken:
            continue
        if file not in definitions.types:
            issues.add(
                ref_path,
                f"unresolvable reference: no type file {file!r}",
                expected=one_of(sorted(definitions.types)),
                given=show_value(ref),
                hint=_hint(file, definitions.types),
            )
        elif _resolve_pointer(definitions.types[file], pointer) is None:
            issues.add(
                ref_path,
                f"unresolvable reference: type file {file!r} has no {pointer!r}",
                expected=one_of(sorted(definitions.types[file])),
                given=show_value(ref),
                hint=_hint(pointer, definitions.types[file]),
            )


def _hint(word: str, candidates: Any) -> str | None:
    return did_you_mean(word, list(candidates))


def _build_interface(
    name: str, file: str, data: dict, issues: IssueCollector, definitions: Definitions
) -> Interface | None:
    structurally_valid = not issues.has_issue_within([])
    if not re.match(ID_PATTERN, name):
        issues.add([], f"invalid interface file name {name!r}", expected=f"a name matching {ID_PATTERN}")
    cmds: dict[str, CmdDef] = {}
    for cmd_name, cmd in _as_dict(data.get("cmds")).items():
        if not isinstance(cmd, dict):
            continue
        for arg_name, schema in _as_dict(cmd.get("arguments")).items():
            arg_path: list[PathPart] = ["cmds", cmd_name, "arguments", arg_name]
            if not issues.has_issue_within(arg_path):
                _check_schema(schema, arg_path, issues, "argument", definitions)
        result = cmd.get("result")
        if isinstance(result, dict):
            _check_schema(result, ["cmds", cmd_name, "result"], issues, "result", definitions)
        cmds[cmd_name] = CmdDef(cmd_name, cmd.get("description", ""), _as_dict(cmd.get("arguments")), result)
    variables = _as_dict(data.get("vars"))
    for var_name, schema in variables.items():
        if not issues.has_issue_within(["vars", var_name]):
            _check_schema(schema, ["vars", var_name], issues, "var", definitions)

    errors: dict[str, dict[str, ErrorDef]] = {}
    for index, entry in enumerate(_as_list(data.get("errors"))):
        path: list[PathPart] = ["errors", index, "reference"]
        if issues.has_issue_within(["errors", index]):
            continue
        ref = entry["reference"]
        match = _ERROR_REF.match(ref)
        if not match:
            issues.add(
                path,
                "invalid error reference",
                expected="'/errors/<file>' or '/errors/<file>#/<ErrorName>'",
                given=show_value(ref),
            )
            continue
        namespace, error_name = match.groups()
        declared = definitions.errors.get(namespace)
        if f"errors/{namespace}" in definitions._broken:
            continue
        if declared is None:
            issues.add(
                path,
                f"unknown error file {namespace!r}",
                expected=one_of(sorted(definitions.errors)),
                given=show_value(ref),
                hint=_hint(namespace, definitions.errors),
            )
            continue
        if error_name is not None and error_name not in declared:
            issues.add(
                path,
                f"error file {namespace!r} has no error {error_name!r}",
                expected=one_of(sorted(declared)),
                given=show_value(ref),
                hint=_hint(error_name, declared),
            )
            continue
        chosen = declared if error_name is None else {error_name: declared[error_name]}
        target = errors.setdefault(namespace, {})
        for error_key, error_def in chosen.items():
            if error_key in target:
                issues.add(path, f"error {namespace}/{error_key} is referenced twice", given=show_value(ref))
            target[error_key] = error_def
    if not structurally_valid or issues.has_issue_within([]):
        return None
    error_types = frozenset(f"{ns}/{n}" for ns, names in errors.items() for n in names)
    return Interface(name, data["description"], cmds, variables, errors, error_types, file)


__all__ = [
    "CmdDef",
    "Definitions",
    "ErrorDef",
    "Interface",
    "SchemaViolation",
    "load_definitions",
]
