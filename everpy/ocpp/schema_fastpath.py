"""A fast "valid or not" for the official OCPP JSON schemas, compiled into a tree of small closures.

jsonschema stays the authority: :meth:`everpy.ocpp.rpc.Schemas.first_error` asks it whenever the fast path
does not say *valid*, so which error is reported (and hence the CALLERROR code) never changes. The fast
path only has to be exact in one direction, and is built to be exact in both: for an instance the
validator would accept it answers True, for any other False.

Only the keywords the OCPP 1.6 (draft-04, some with ``$ref``) and 2.0.1 (draft-06, ``definitions`` and
``"$ref": "#/definitions/..."``) schemas use are compiled, each with the semantics of the validator class
it mirrors (jsonschema's ``_keywords`` / ``_legacy_keywords``):

- ``type`` (a name or a list), through predicates checked against the draft's own type checker (bool is
  neither integer nor number; a Decimal is a number, never an integer; draft-06 also counts an integral
  float as an integer);
- ``properties``, ``required``, ``additionalProperties`` (false, true or a schema), ``enum`` (of strings),
  ``minLength`` / ``maxLength`` (code points), ``minimum`` / ``maximum`` (no ``exclusive*``),
  ``multipleOf`` (int or Decimal: ``instance % multipleOf``, exact with Decimals, in the caller's decimal
  context as jsonschema computes it), ``items`` (one schema), ``additionalItems`` (then ignored, as
  jsonschema does), ``minItems`` / ``maxItems``, ``format`` (through the same functions as the format
  checker; a format it does not know is not checked, as by the checker);
- ``$ref`` to ``#/definitions/<name>`` of the same document (siblings ignored, as drafts 3 to 7 do);
- annotations (``title``, ``description``, ``comment``, ``javaType``, ``default``, ``$schema``, a root
  ``$id``, ``definitions``) are ignored.

Any other keyword, value or draft: :class:`Unsupported` while compiling, so :func:`compile_schema` returns
None and that schema always goes to jsonschema. An exception while checking (a Decimal operation that
traps, a format function that raises) also answers False, so jsonschema meets the same input and behaves
as it always did.
"""

from __future__ import annotations

import decimal
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema

Check = Callable[[Any], bool]
FormatFunction = Callable[[object], object]

_ANNOTATIONS = frozenset({"title", "description", "comment", "$comment", "javaType", "default", "examples",
                          "definitions"})
_ROOT_ONLY = frozenset({"$schema", "$id"})  # elsewhere they could change the dialect or the base of a $ref
_OBJECT = frozenset({"properties", "required", "additionalProperties"})
_ARRAY = frozenset({"items", "additionalItems", "minItems", "maxItems"})
_STRING = frozenset({"minLength", "maxLength"})
_NUMBER = frozenset({"minimum", "maximum", "multipleOf"})
_ANY = frozenset({"type", "enum", "format"})
_KEYWORDS = _OBJECT | _ARRAY | _STRING | _NUMBER | _ANY
# Drafts whose keywords above behave as compiled here (draft-03's required and type differ; 2019-09 on
# validate $ref siblings).
_DRAFTS = (jsonschema.Draft4Validator, jsonschema.Draft6Validator, jsonschema.Draft7Validator)


class Unsupported(Exception):
    """The schema uses something the fast path does not compile: it has no fast path."""


def _always(instance: Any) -> bool:
    return True


def _is_string(instance: Any) -> bool:
    return isinstance(instance, str)


def _is_object(instance: Any) -> bool:
    return isinstance(instance, dict)


def _is_array(instance: Any) -> bool:
    return isinstance(instance, list)


def _is_boolean(instance: Any) -> bool:
    return isinstance(instance, bool)


def _is_null(instance: Any) -> bool:
    return instance is None


def _is_integer(instance: Any) -> bool:
    return instance.__class__ is int or (isinstance(instance, int) and not isinstance(instance, bool))


def _is_integer_or_integral_float(instance: Any) -> bool:
    return _is_integer(instance) or (isinstance(instance, float) and instance.is_integer())


def _is_number(instance: Any) -> bool:
    cls = instance.__class__
    return (cls is int or cls is decimal.Decimal or cls is float
            or (cls is not bool and isinstance(instance, numbers.Number)))


_PROBES: tuple[object, ...] = (
    True, False, 0, 1, -7, 2**80, 1.0, 1.5, float("inf"), decimal.Decimal(1), decimal.Decimal("1.0"),
    decimal.Decimal("1.5"), decimal.Decimal("-0"), "", "1", [], [1], {}, {"a": 1}, None)


def _type_predicates(draft: type[jsonschema.protocols.Validator]) -> dict[str, Check]:
    """Our predicates for the draft's types, each proven on probes to agree with the draft's type checker."""
    checker = draft.TYPE_CHECKER
    integer = _is_integer_or_integral_float if checker.is_type(1.0, "integer") else _is_integer
    predicates: dict[str, Check] = {"string": _is_string, "object": _is_object, "array": _is_array,
                                    "boolean": _is_boolean, "null": _is_null, "integer": integer,
                                    "number": _is_number}
    for name, predicate in predicates.items():
        for probe in _PROBES:
            if predicate(probe) != checker.is_type(probe, name):
                raise Unsupported(f"type {name!r} of {draft.__name__} differs on {probe!r}")
    return predicates


def _non_negative_int(schema: Mapping[str, Any], keyword: str) -> int | None:
    value = schema.get(keyword)
    if value is None:
        return None
    if value.__class__ is not int or value < 0:
        raise Unsupported(f"{keyword} {value!r}")
    return int(value)


def _bound(schema: Mapping[str, Any], keyword: str) -> int | decimal.Decimal | None:
    value = schema.get(keyword)
    if value is None:
        return None
    if value.__class__ is int or (isinstance(value, decimal.Decimal) and value.is_finite()):
        return value
    raise Unsupported(f"{keyword} {value!r}")  # a float would compare inexactly against Decimals


class _Compiler:
    def __init__(self, root: Mapping[str, Any], draft: type[jsonschema.protocols.Validator],
                 formats: Mapping[str, FormatFunction]) -> None:
        if draft not in _DRAFTS:
            raise Unsupported(f"draft {draft.__name__}")
        self._root = root
        self._known = frozenset(draft.VALIDATORS)  # a keyword the draft does not know, it ignores: we don't
        self._types = _type_predicates(draft)
        self._formats = formats
        self._refs: dict[str, Check] = {}
        self._resolving: set[str] = set()

    def root(self) -> Check:
        if not all(isinstance(self._root.get(keyword, ""), str) for keyword in _ROOT_ONLY):
            raise Unsupported("$schema/$id")
        return self.node(self._root, root=True)

    def node(self, schema: Any, root: bool = False) -> Check:
        if not isinstance(schema, dict):
            raise Unsupported(f"schema {schema!r:.40}")  # incl. draft-06 boolean schemas: not in OCPP's
        if "$ref" in schema:
            return self._ref(schema["$ref"])  # siblings of $ref are ignored (drafts 3 to 7)
        keywords = schema.keys() - _ANNOTATIONS - (_ROOT_ONLY if root else set())
        unknown = keywords - (_KEYWORDS & self._known)
        if unknown:
            raise Unsupported(f"keywords {sorted(unknown)}")
        if not keywords:
            return _always
        specific: dict[str, Check | None] = {
            "object": self._object(schema) if keywords & _OBJECT else None,
            "array": self._array(schema) if keywords & _ARRAY else None,
            "string": self._string(schema) if keywords & _STRING else None,
            "number": self._number(schema) if keywords & _NUMBER else None,
        }
        general = [check for check in (self._enum(schema), self._format(schema)) if check is not None]
        if "type" not in schema:
            return _untyped(specific, general)
        names = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        if not isinstance(names, list) or not names or any(name not in self._types for name in names):
            raise Unsupported(f"type {schema['type']!r}")
        if len(names) == 1:
            name = names[0]
            specific_check = specific["number" if name == "integer" else name] if name in (
                "object", "array", "string", "number", "integer") else None
            return _typed(self._types[name], specific_check, general)
        return _untyped(specific, general, _any_of([self._types[name] for name in names]))

    def _ref(self, ref: Any) -> Check:
        if ref in self._refs:
            return self._refs[ref]
        if not isinstance(ref, str) or not ref.startswith("#/definitions/"):
            raise Unsupported(f"$ref {ref!r}")
        name = ref.removeprefix("#/definitions/")
        definitions = self._root.get("definitions")
        if any(c in name for c in "/~%") or not isinstance(definitions, dict) or name not in definitions:
            raise Unsupported(f"$ref {ref!r}")
        if ref in self._resolving:  # a recursive definition: look it up when checking, it is done by then
            refs = self._refs
            return lambda instance: refs[ref](instance)
        self._resolving.add(ref)
        check = self.node(definitions[name])
        self._resolving.discard(ref)
        self._refs[ref] = check
        return check

    def _object(self, schema: Mapping[str, Any]) -> Check:
        """For an instance known to be a dict: properties, required, additionalProperties."""
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        extra_schema = schema.get("additionalProperties", True)
        if not isinstance(properties, dict) or not isinstance(required, list) or not all(
                isinstance(name, str) for name in required):
            raise Unsupported("properties/required")
        checks: dict[str, Check] = {name: self.node(sub) for name, sub in properties.items()}
        names = tuple(required)
        extra: Check | None  # None: any extra property is fine
        if extra_schema is True:
            extra = None
        elif extra_schema is False:
            extra = _never
        else:
            extra = self.node(extra_schema)
        get = checks.get

        def check_object(instance: dict[Any, Any]) -> bool:
            for name in names:
                if name not in instance:
                    return False
            for key, value in instance.items():
                check = get(key)
                if check is None:
                    if extra is not None and not extra(value):
                        return False
                elif not check(value):
                    return False
            return True

        return check_object

    def _array(self, schema: Mapping[str, Any]) -> Check:
        """For an instance known to be a list: items (one schema), minItems, maxItems."""
        items = schema.get("items", {})
        if not isinstance(items, dict):
            raise Unsupported("items as a list or boolean")  # additionalItems then counts: not compiled
        item = self.node(items)
        low = _non_negative_int(schema, "minItems") or 0
        high = _non_negative_int(schema, "maxItems")

        def check_array(instance: list[Any]) -> bool:
            if len(instance) < low or (high is not None and len(instance) > high):
                return False
            if item is not _always:
                for value in instance:
                    if not item(value):
                        return False
            return True

        return check_array

    def _string(self, schema: Mapping[str, Any]) -> Check:
        """For an instance known to be a str: minLength, maxLength."""
        low = _non_negative_int(schema, "minLength") or 0
        high = _non_negative_int(schema, "maxLength")
        if high is None:
            return lambda instance: len(instance) >= low
        return lambda instance: low <= len(instance) <= high

    def _number(self, schema: Mapping[str, Any]) -> Check:
        """For an instance known to be a number (not bool): minimum, maximum, multipleOf."""
        low, high = _bound(schema, "minimum"), _bound(schema, "maximum")
        step = _bound(schema, "multipleOf")
        if step is not None and step <= 0:
            raise Unsupported(f"multipleOf {step!r}")

        def check_number(instance: Any) -> bool:
            if low is not None and instance < low:
                return False
            if high is not None and instance > high:
                return False
            return not (step is not None and instance % step)  # as jsonschema: a remainder fails

        return check_number

    def _enum(self, schema: Mapping[str, Any]) -> Check | None:
        if "enum" not in schema:
            return None
        values = schema["enum"]
        if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
            raise Unsupported("enum of other than strings")  # jsonschema's equal() keeps 1 != True
        allowed = frozenset(values)
        return lambda instance: isinstance(instance, str) and instance in allowed

    def _format(self, schema: Mapping[str, Any]) -> Check | None:
        if "format" not in schema:
            return None
        if not isinstance(schema["format"], str):
            raise Unsupported(f"format {schema['format']!r}")
        function = self._formats.get(schema["format"])
        if function is None:
            return None  # the format checker does not know it either: not checked
        return lambda instance: bool(function(instance))  # the checker calls it for any instance


def _never(instance: Any) -> bool:
    return False


def _any_of(predicates: list[Check]) -> Check:
    return lambda instance: any(predicate(instance) for predicate in predicates)


def _typed(predicate: Check, specific: Check | None, general: list[Check]) -> Check:
    """One type: the checks of its kind apply to every instance that passes, those of other kinds to none."""
    checks = ([specific] if specific is not None else []) + general
    if not checks:
        return predicate
    if len(checks) == 1:
        only = checks[0]
        return lambda instance: predicate(instance) and only(instance)
    if len(checks) == 2:
        first, second = checks
        return lambda instance: predicate(instance) and first(instance) and second(instance)
    return lambda instance: predicate(instance) and all(check(instance) for check in checks)


def _untyped(specific: Mapping[str, Check | None], general: list[Check], predicate: Check | None = None) -> Check:
    """No type or several: each kind's checks apply to the instances of that kind."""
    for_object, for_array = specific["object"], specific["array"]
    for_string, for_number = specific["string"], specific["number"]

    def check(instance: Any) -> bool:
        if predicate is not None and not predicate(instance):
            return False
        if isinstance(instance, dict):
            if for_object is not None and not for_object(instance):
                return False
        elif isinstance(instance, list):
            if for_array is not None and not for_array(instance):
                return False
        elif isinstance(instance, str):
            if for_string is not None and not for_string(instance):
                return False
        elif for_number is not None and _is_number(instance) and not for_number(instance):
            return False
        return all(each(instance) for each in general)

    return check


def compile_schema(schema: Mapping[str, Any] | bool, draft: type[jsonschema.protocols.Validator],
                   formats: Mapping[str, FormatFunction]) -> Check | None:
    """The fast check of one schema (as validated by ``draft`` with a format checker of ``formats``), or
    None when it uses anything not compiled here. The check answers True only where the draft's validator
    finds no error, and never raises."""
    if not isinstance(schema, dict):
        return None
    try:
        check = _Compiler(schema, draft, formats).root()
    except Unsupported:
        return None

    def fast_valid(instance: Any) -> bool:
        try:
            return bool(check(instance))
        except Exception:  # e.g. a Decimal remainder that traps: jsonschema meets it and says what it says
            return False

    return fast_valid
