"""The compiled schema fast path (everpy.ocpp.schema_fastpath) agrees with jsonschema on every official OCPP
1.6 and 2.0.1 schema: valid payloads generated from each schema and mutations of them (a required field
dropped, an extra field, wrong types, numbers out of range or off the multipleOf grid, long strings, bad
enums and date-times, Decimals with many digits); plus unit cases and the wiring in Schemas."""

from __future__ import annotations

import copy
import decimal
from datetime import UTC, timedelta, timezone
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator, Draft6Validator

from everpy.ocpp.rpc import _FORMATS, Schemas, _is_datetime
from everpy.ocpp.schema_fastpath import compile_schema

FORMATS = {"date-time": _is_datetime}
VERSIONS = {"v16": Schemas("v16", draft=Draft4Validator), "v201": Schemas("v201", "Request", Draft6Validator)}
CASES = [(version, action, response) for version, schemas in VERSIONS.items()
         for action in sorted(schemas.actions) for response in (False, True)]
IDS = [f"{version}-{action}{'Response' if response else 'Request'}" for version, action, response in CASES]

ODD: list[Any] = [None, True, False, 0, 1, -1, 2**31, -(2**31) - 1, Decimal("1.0"), Decimal("0.5"), Decimal("-0"),
                  Decimal("1E+2"), "", "x", "Accepted", "2026-05-09T07:35:25Z", [], [1], [{}], {}, {"a": 1}]
BAD_DATES = ["", "now", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-05-09T25:00:00Z",
             "2026-05-09T07:35:25+25:00", "2026-05-09 07:35:25", "2026-05-09", "07:35:25", "2026-05-09T07:35:25.123Z",
             "2026-05-09T07:35:25.123456789Z", "Z", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"]
MANY_DIGITS = [Decimal("16.1000000000000000000000000001"), Decimal("16.10000000000000000000000000000000000000001"),
               Decimal("0.30000000000000000000000000000001"), Decimal(1.1), Decimal("16.100"), Decimal("1E+30"),
               Decimal("1E-30"), Decimal("0E-40"), Decimal("123456789012.1"), Decimal("-0.0"), Decimal("1E+1")]


def resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = root["definitions"][schema["$ref"].removeprefix("#/definitions/")]
    return schema


def as_int(bound: Any, default: int) -> int:
    return default if bound is None else int(bound)


DATE_TIMES = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))])).map(
    lambda d: d.isoformat().replace("+00:00", "Z"))


_VALID: dict[tuple[int, int], st.SearchStrategy[Any]] = {}  # by id() of the (cached) schema dicts, and depth
OPTIONAL_DEPTH = 3  # deeper objects get their required properties only: keeps 2.0.1's big payloads fast


def valid(schema: dict[str, Any], root: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Payloads built to fit the schema (jsonschema, not this, decides whether they do)."""
    schema = resolve(schema, root)
    key = (id(schema), min(depth, OPTIONAL_DEPTH))
    if key not in _VALID:
        _VALID[key] = _valid(schema, root, key[1])
    return _VALID[key]


def _valid(schema: dict[str, Any], root: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        required = [name for name in schema.get("required", []) if name in properties]
        optional = {} if depth >= OPTIONAL_DEPTH else {
            name: valid(sub, root, depth + 1) for name, sub in properties.items() if name not in required}
        return st.fixed_dictionaries({name: valid(properties[name], root, depth + 1) for name in required},
                                     optional=optional)
    if kind == "array":
        low = schema.get("minItems", 0)
        return st.lists(valid(schema.get("items", {}), root, depth), min_size=low,
                        max_size=min(schema.get("maxItems", low + 2), low + 2))
    if kind == "string":
        if schema.get("format") == "date-time":
            return DATE_TIMES
        high = schema.get("maxLength", 40)
        return st.one_of(st.text(max_size=min(high, 12)), st.integers(0, min(high, 2)).map(lambda n: "é" * (high - n)))
    if kind in ("integer", "number"):
        low, high = as_int(schema.get("minimum"), -(2**31)), as_int(schema.get("maximum"), 2**31 - 1)
        integers = st.integers(low, high)
        if kind == "integer":
            return integers
        if "multipleOf" in schema:
            step = schema["multipleOf"]
            return st.integers(-(10**6), 10**6).map(lambda k: k * step).filter(lambda x: low <= x <= high)
        return st.one_of(integers, st.decimals(low, high, allow_nan=False, allow_infinity=False, places=3))
    if kind == "boolean":
        return st.booleans()
    return st.sampled_from(ODD)


def bad(schema: dict[str, Any], current: Any) -> st.SearchStrategy[Any]:
    """A replacement for ``current`` that a validator may well refuse: mostly one made for its schema,
    sometimes any odd value."""
    options: list[st.SearchStrategy[Any]] = []
    kind = schema.get("type")
    if kind == "object" and isinstance(current, dict):
        present = [name for name in schema.get("required", []) if name in current]
        if present:
            options.append(st.sampled_from(present).map(
                lambda gone: {name: value for name, value in current.items() if name != gone}))
        options.append(st.sampled_from(["extra", "Extra", "", "connectorId"]).map(lambda name: {**current, name: 1}))
    elif kind == "array" and isinstance(current, list):
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        options.append(st.just(current[: max(low - 1, 0)]))
        if current and high is not None and high <= 64:  # one too many, where that stays a small payload
            options.append(st.just(current + [current[0]] * (high + 1 - len(current))))
        options.append(st.lists(st.sampled_from(ODD), max_size=3))
    elif kind == "string":
        high = schema.get("maxLength")
        if high is not None:
            options.append(st.sampled_from([high, high + 1, high + 7]).flatmap(
                lambda n: st.sampled_from(["x" * n, "é" * n, "\U0001f50c" * n])))
        options.append(st.sampled_from([s + c for s in schema.get("enum", ["Accepted"]) for c in ("", " ")]
                                       + [s.lower() for s in schema.get("enum", [])]))
        if schema.get("format") == "date-time":
            options.append(st.sampled_from(BAD_DATES))
    elif kind in ("integer", "number"):
        edges = [Decimal(1), Decimal("1.0"), True, 2**31, 2**63]
        for keyword in ("minimum", "maximum"):
            if keyword in schema:
                edge = schema[keyword]
                edges += [edge, edge - 1, edge + 1, Decimal(edge) - Decimal("1E-9"), Decimal(edge) + Decimal("1E-9")]
        options.append(st.sampled_from(edges))
        options.append(st.sampled_from(MANY_DIGITS))
        options.append(st.integers(-3000, 3000).map(lambda k: Decimal(k) / 100))
    odd = st.sampled_from(ODD + MANY_DIGITS)
    if not options:
        return odd
    made = st.one_of(options)
    return st.integers(0, 3).flatmap(lambda k: odd if k == 0 else made)


RARE = {"minimum", "maximum", "multipleOf", "maxItems"}


def sites(value: Any, schema: dict[str, Any], root: dict[str, Any], path: tuple[Any, ...] = ()) -> list[Any]:
    """(path, schema, value) of every node of the payload, for mutations anywhere in it."""
    schema = resolve(schema, root)
    found = [(path, schema, value)]
    if isinstance(value, dict):
        for name, item in value.items():
            if name in schema.get("properties", {}):
                found += sites(item, schema["properties"][name], root, (*path, name))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found += sites(item, schema["items"], root, (*path, index))
    return found


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    value = copy.copy(value)
    value[path[0]] = replaced(value[path[0]], path[1:], new)
    return value


def near(root: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A valid-looking payload of the schema, about half the time with one to three mutations."""
    payloads = valid(root, root)

    @st.composite
    def draw_near(draw: st.DrawFn) -> Any:
        value = draw(payloads)
        if draw(st.booleans()):
            return value
        for _ in range(draw(st.integers(1, 3))):
            found = sites(value, root, root)
            rare = [site for site in found if RARE & site[1].keys()]  # few nodes have these: aim at them too
            aim = bool(rare) and draw(st.booleans())
            path, schema, current = draw(st.sampled_from(rare if aim else found))
            value = replaced(value, path, draw(bad(schema, current)))
        return value

    return draw_near()


def jsonschema_valid(validator: Any, payload: Any) -> bool:
    try:
        return jsonschema.exceptions.best_match(validator.iter_errors(payload)) is None
    except Exception:  # jsonschema itself fails on it (a Decimal remainder that traps): never "fast valid"
        return False


STRATEGIES: dict[tuple[str, bool, str], Any] = {}


@pytest.mark.parametrize(("version", "action", "response"), CASES, ids=IDS)
@settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fast_path_agrees_with_jsonschema(version: str, action: str, response: bool, data: st.DataObject) -> None:
    schemas = VERSIONS[version]
    validator = schemas.validator(action, response)
    key = (version, response, action)
    if key not in STRATEGIES:
        assert isinstance(validator.schema, dict)
        STRATEGIES[key] = (compile_schema(validator.schema, type(validator), FORMATS), near(validator.schema))
    check, strategy = STRATEGIES[key]
    assert check is not None, "every official OCPP schema has a fast path"
    payload = data.draw(strategy)
    try:
        want = jsonschema.exceptions.best_match(validator.iter_errors(payload))
    except Exception:  # jsonschema itself fails on it (a Decimal remainder that traps): never "fast valid"
        assert not check(payload)
        return
    assert check(payload) == (want is None)
    got = schemas.first_error(action, payload, response)  # still jsonschema's own best error
    assert (got is None) == (want is None)
    if got is not None and want is not None:
        assert (got.validator, list(got.absolute_path), got.message) == (
            want.validator, list(want.absolute_path), want.message)


def leaves(wanted: Any) -> list[dict[str, Any]]:
    """The distinct subschemas of all official schemas for which ``wanted(subschema)`` holds."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if wanted(node):
                found.setdefault(repr(sorted((k, v) for k, v in node.items() if k not in ANNOTATIONS)), node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for version, action, response in CASES:
        walk(VERSIONS[version].validator(action, response).schema)
    return list(found.values())


ANNOTATIONS = {"description", "javaType", "title", "default", "additionalProperties"}
NUMBER_LEAVES = leaves(lambda node: node.get("type") in ("integer", "number") and len(node.keys() & RARE) > 0)
DATE_TIME_LEAVES = leaves(lambda node: node.get("format") == "date-time")
NUMBERS = st.one_of(st.integers(), st.integers(-(2**32), 2**32), st.booleans(),
                    st.decimals(allow_nan=False, allow_infinity=False),
                    st.decimals(-1000, 1000, allow_nan=False, allow_infinity=False, places=2),
                    st.integers(-3000, 3000).map(lambda k: Decimal(k) / 10), st.sampled_from(MANY_DIGITS),
                    st.sampled_from([Decimal("-0.0"), Decimal("0E+3"), Decimal("-1E-9"), Decimal("100.0"),
                                     Decimal("100.000000001"), Decimal("99.99999999999999999999999999999")]))
DATE_TIME_STRINGS = st.one_of(
    DATE_TIMES, st.sampled_from(BAD_DATES), st.text(max_size=30), st.none(), st.integers(),
    st.from_regex(r"\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-6]\d:[0-6]\d(\.\d{1,9})?(Z|[+-][0-2]\d:?[0-6]\d)?", fullmatch=True))


def near_bounds(leaf: dict[str, Any]) -> st.SearchStrategy[Any]:
    bounds = [leaf[keyword] for keyword in ("minimum", "maximum") if keyword in leaf]
    return st.sampled_from([kind(bound) + step for bound in bounds for kind in (int, Decimal)
                            for step in (-1, 0, 1, Decimal("-1E-9"), Decimal("1E-9"))])


@pytest.mark.parametrize("leaf", NUMBER_LEAVES, ids=repr)
@settings(max_examples=150, deadline=None, database=None)
@given(data=st.data())
def test_numeric_constraints_agree(leaf: dict[str, Any], data: st.DataObject) -> None:
    """The official schemas' minimum / maximum / multipleOf leaves, on ints, bools and Decimals of any size
    (the many-digit ones with a remainder the decimal context cannot hold make jsonschema raise), and on
    each side of the bounds."""
    number = data.draw(st.one_of(NUMBERS, near_bounds(leaf)) if RARE - {"multipleOf"} & leaf.keys() else NUMBERS)
    for draft in (Draft4Validator, Draft6Validator):
        assert fast(leaf, draft)(number) == jsonschema_valid(draft(leaf), number)


@pytest.mark.parametrize("leaf", DATE_TIME_LEAVES[:1], ids=repr)
@settings(max_examples=150, deadline=None, database=None)
@given(moment=DATE_TIME_STRINGS)
def test_date_time_agrees(leaf: dict[str, Any], moment: Any) -> None:
    assert fast(leaf)(moment) == jsonschema_valid(Draft4Validator(leaf, format_checker=_FORMATS), moment)


# ------------------------------------------------------------------ unit cases
def fast(schema: dict[str, Any], draft: Any = Draft4Validator) -> Any:
    check = compile_schema(schema, draft, FORMATS)
    assert check is not None
    return check


def agree(schema: dict[str, Any], payload: Any, draft: Any = Draft4Validator) -> bool:
    result = fast(schema, draft)(payload)
    assert result == draft(schema, format_checker=_FORMATS).is_valid(payload), payload
    return result


LIMIT = {"type": "number", "multipleOf": Decimal("0.1")}


@pytest.mark.parametrize("draft", [Draft4Validator, Draft6Validator])
def test_decimal_multiple_of_is_exact(draft: Any) -> None:
    assert agree(LIMIT, Decimal("16.1"), draft)
    assert agree(LIMIT, Decimal("16.10"), draft)
    assert agree(LIMIT, 16, draft)
    assert not agree(LIMIT, Decimal("16.15"), draft)
    assert not agree(LIMIT, Decimal("16.1000000000000000000000000001"), draft)
    assert not agree(LIMIT, Decimal(16.1), draft)  # the binary float's exact expansion is off the grid
    assert not agree(LIMIT, True, draft)


def test_decimal_multiple_of_on_the_official_1_6_schema() -> None:
    schemas = VERSIONS["v16"]
    period = {"startPeriod": 0, "limit": Decimal("16.1")}
    payload = {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [period]}}}
    assert schemas.fast_valid("SetChargingProfile", payload, False)
    assert schemas.first_error("SetChargingProfile", payload, False) is None
    period["limit"] = Decimal("16.15")
    assert not schemas.fast_valid("SetChargingProfile", payload, False)
    error = schemas.first_error("SetChargingProfile", payload, False)
    assert error is not None and error.validator == "multipleOf"


def test_a_decimal_context_trap_is_left_to_jsonschema() -> None:
    # 1E+30 / 0.1 needs more than the context's 28 digits: the remainder raises; jsonschema raises the same
    assert fast(LIMIT)(Decimal("1E+30")) is False
    with pytest.raises(decimal.InvalidOperation):
        Draft4Validator(LIMIT).is_valid(Decimal("1E+30"))


@pytest.mark.parametrize("draft", [Draft4Validator, Draft6Validator])
def test_bool_is_neither_integer_nor_number(draft: Any) -> None:
    for kind in ("integer", "number"):
        assert not agree({"type": kind}, True, draft)
        assert not agree({"type": kind}, False, draft)
        assert agree({"type": kind}, 0, draft)
    assert agree({"type": "boolean"}, True, draft)
    assert not agree({"type": "boolean"}, 1, draft)
    assert not agree({"type": "integer", "minimum": 0}, True, draft)
    assert not agree({"type": "string", "enum": ["1"]}, 1, draft)


@pytest.mark.parametrize("draft", [Draft4Validator, Draft6Validator])
def test_decimals_are_numbers_not_integers(draft: Any) -> None:
    for value in (Decimal("1"), Decimal("1.0"), Decimal("1.5")):
        assert not agree({"type": "integer"}, value, draft)  # draft-06 counts integral floats, not Decimals
        assert agree({"type": "number"}, value, draft)
    assert agree({"type": "integer"}, 1.0, Draft6Validator)
    assert not agree({"type": "integer"}, 1.0, Draft4Validator)
    assert agree({"type": ["integer", "string"]}, "x", draft)
    assert not agree({"type": ["integer", "string"]}, Decimal(1), draft)


def test_ref_to_definitions() -> None:
    schema = {
        "$id": "urn:test:ref", "type": "object", "additionalProperties": False, "required": ["idToken"],
        "definitions": {
            "IdTokenEnumType": {"type": "string", "enum": ["Central", "ISO14443"]},
            "IdTokenType": {"type": "object", "additionalProperties": False, "required": ["idToken", "type"],
                            "properties": {"idToken": {"type": "string", "maxLength": 36},
                                           "type": {"$ref": "#/definitions/IdTokenEnumType"}}}},
        "properties": {"idToken": {"$ref": "#/definitions/IdTokenType", "description": "siblings are ignored"},
                       "more": {"type": "array", "minItems": 1, "maxItems": 2,
                                "items": {"$ref": "#/definitions/IdTokenType"}}}}
    token = {"idToken": "A", "type": "Central"}
    assert agree(schema, {"idToken": token}, Draft6Validator)
    assert agree(schema, {"idToken": token, "more": [token, token]}, Draft6Validator)
    assert not agree(schema, {"idToken": token, "more": []}, Draft6Validator)
    assert not agree(schema, {"idToken": token, "more": [token] * 3}, Draft6Validator)
    assert not agree(schema, {"idToken": {"idToken": "A", "type": "central"}}, Draft6Validator)
    assert not agree(schema, {"idToken": {"idToken": "A" * 37, "type": "Central"}}, Draft6Validator)
    assert not agree(schema, {"idToken": {**token, "extra": 1}}, Draft6Validator)
    assert not agree(schema, {}, Draft6Validator)
    assert agree(schema, {"idToken": token}, Draft4Validator)  # 1.6's security schemas: draft-06 read as draft-04


def test_recursive_ref() -> None:
    schema = {"definitions": {"node": {"type": "object", "additionalProperties": False,
                                       "properties": {"child": {"$ref": "#/definitions/node"}}}},
              "$ref": "#/definitions/node"}
    assert agree(schema, {"child": {"child": {}}}, Draft6Validator)
    assert not agree(schema, {"child": {"child": {"x": 1}}}, Draft6Validator)


def test_date_time_and_unknown_formats() -> None:
    moment = {"type": "string", "format": "date-time"}
    assert agree(moment, "2026-05-09T07:35:25.123Z")
    assert not agree(moment, "2026-13-09T07:35:25Z")
    assert agree({"type": "string", "format": "uri"}, "not a uri")  # the format checker knows no uri either
    assert not agree(moment, 5)


@pytest.mark.parametrize("schema", [
    {"type": "string", "pattern": "^a"}, {"anyOf": [{"type": "string"}]}, {"type": "integer", "exclusiveMinimum": 0},
    {"type": "object", "patternProperties": {"^a": {}}}, {"type": "array", "items": [{"type": "string"}]},
    {"enum": [1, 2]}, {"type": "strange"}, {"$ref": "other.json#/definitions/x"}, {"$ref": "#/definitions/missing"},
    {"type": "number", "multipleOf": 0.1}, {"properties": {"a": {"$id": "urn:nested"}}},
])
def test_unknown_keywords_get_no_fast_path(schema: dict[str, Any]) -> None:
    assert compile_schema(schema, Draft6Validator, FORMATS) is None


def test_unsupported_drafts_get_no_fast_path() -> None:
    assert compile_schema({"type": "string"}, jsonschema.Draft3Validator, FORMATS) is None
    assert compile_schema({"type": "string"}, jsonschema.Draft202012Validator, FORMATS) is None


def test_schemas_skip_jsonschema_only_for_a_valid_payload(monkeypatch: pytest.MonkeyPatch) -> None:
    schemas = Schemas("v16", draft=Draft4Validator)
    calls: list[Any] = []
    best_match = jsonschema.exceptions.best_match

    def counted(errors: Any) -> Any:
        calls.append(1)
        return best_match(errors)

    monkeypatch.setattr(jsonschema.exceptions, "best_match", counted)
    assert schemas.first_error("GetConfiguration", {"key": ["HeartbeatInterval"]}, False) is None
    assert calls == []
    error = schemas.first_error("GetConfiguration", {"key": ["HeartbeatInterval"], "extra": 1}, False)
    assert calls == [1] and error is not None and error.validator == "additionalProperties"
    schemas._fast["GetConfiguration"] = None  # a schema without a fast path: jsonschema every time
    assert schemas.first_error("GetConfiguration", {"key": ["HeartbeatInterval"]}, False) is None
    assert calls == [1, 1]
