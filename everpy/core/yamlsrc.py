"""YAML loading that remembers where every mapping key and list item came from.

The data comes back as plain Python (dict/list/str/...); a `LineMap` answers "which line holds
`active_modules.evse.config_module.foo`?" so every validation message can name file:line.
Lines are recorded per container object (by identity), which keeps the loaded data free of wrapper
types and costs one small dict per mapping.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from everpy.core.config_errors import ConfigError, ConfigIssue, PathPart, format_path

try:  # libyaml's parser+composer when available (much faster); construction stays in Python either way
    from yaml._yaml import CParser  # where yaml.cyaml imports it from (the stubs do not re-export it there)

    _HAVE_LIBYAML = True
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _HAVE_LIBYAML = False


class _Yaml12CoreResolver(yaml.resolver.BaseResolver):
    """YAML 1.2 core-schema scalars, as EVerest's own YAML library reads them.

    PyYAML's default is YAML 1.1, where `ON`/`off`/`yes` are booleans, `010` is octal, `1:30` is 90 and
    `2024-01-01` a date; EVerest files rely on 1.2 (e.g. an enum of `ON`/`OFF` strings).
    """


_Yaml12CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Yaml12CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Yaml12CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)
_Yaml12CoreResolver.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
_Yaml12CoreResolver.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


if _HAVE_LIBYAML:

    class _BaseLoader(CParser, yaml.constructor.SafeConstructor, _Yaml12CoreResolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            _Yaml12CoreResolver.__init__(self)

else:  # pragma: no cover

    class _BaseLoader(  # type: ignore[no-redef]
        yaml.reader.Reader,
        yaml.scanner.Scanner,
        yaml.parser.Parser,
        yaml.composer.Composer,
        yaml.constructor.SafeConstructor,
        _Yaml12CoreResolver,
    ):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            _Yaml12CoreResolver.__init__(self)


class LineMap:
    """Line numbers (1-based) of the keys and items of one loaded YAML document."""

    def __init__(
        self, file: str, root: Any, lines_by_container: dict[int, dict[Any, int]], root_line: int | None
    ) -> None:
        self.file = file
        self._root = root
        # id(container) -> {key or index: line}; the containers are kept alive by `_root`.
        self._lines = lines_by_container
        self._root_line = root_line

    def line(self, path: Sequence[PathPart]) -> int | None:
        """Line of the deepest element of `path` that exists in the document (the parent if a key is
        missing, so "missing key" issues point at the mapping that lacks it)."""
        node = self._root
        best = self._root_line
        for part in path:
            lines = self._lines.get(id(node))
            if lines is None or part not in lines:
                break
            best = lines[part]
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                break
        return best

    def subtree(self, path: Sequence[PathPart]) -> LineMap:
        """A LineMap rooted at `path` (used when one part of a file is validated on its own)."""
        node = self._root
        for part in path:
            node = node[part]
        return LineMap(self.file, node, self._lines, self.line(path) or self._root_line)


class _LineLoader(_BaseLoader):
    """Safe loader that records key/item lines and reports duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.container_lines: dict[int, dict[Any, int]] = {}
        self.duplicates: list[tuple[int, Any, int]] = []  # (line, key, id(container))

    def _record_map(self, node: yaml.MappingNode) -> Iterator[dict]:
        data: dict = {}
        yield data
        own_pairs = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
        self.flatten_mapping(node)
        merged_pairs = len(node.value) - own_pairs  # flatten_mapping puts merged pairs first
        lines: dict[Any, int] = {}
        own_keys: set[Any] = set()
        for position, (key_node, value_node) in enumerate(node.value):
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found an unhashable key",
                    key_node.start_mark,
                ) from None
            if position >= merged_pairs:  # a key may override a merged one, but not repeat itself
                if key in own_keys:
                    self.duplicates.append((key_node.start_mark.line + 1, key, id(data)))
                own_keys.add(key)
            data[key] = self.construct_object(value_node, deep=True)
            lines[key] = key_node.start_mark.line + 1
        self.container_lines[id(data)] = lines

    def _record_seq(self, node: yaml.SequenceNode) -> Iterator[list]:
        data: list = []
        yield data
        data.extend(self.construct_object(child, deep=True) for child in node.value)
        self.container_lines[id(data)] = {i: child.start_mark.line + 1 for i, child in enumerate(node.value)}


def _construct_core_int(loader: _LineLoader, node: yaml.ScalarNode) -> int:
    text = str(node.value)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)  # decimal even with leading zeros (1.2 core), unlike PyYAML's octal


# types-PyYAML bounds add_constructor's loader type to PyYAML's own Loader/CLoader classes; a loader composed
# from the same mixins (as PyYAML's are) works at runtime but does not satisfy that bound.
_LineLoader.add_constructor("tag:yaml.org,2002:int", _construct_core_int)  # type: ignore[type-var]
_LineLoader.add_constructor("tag:yaml.org,2002:map", _LineLoader._record_map)  # type: ignore[type-var]
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _LineLoader._record_seq)  # type: ignore[type-var]


def load_yaml_text(text: str, file: str) -> tuple[Any, LineMap]:
    """Parse `text` (named `file` in messages). Malformed YAML and duplicate keys raise ConfigError."""
    loader = _LineLoader(text)
    try:
        root_node = loader.get_single_node()
        data = loader.construct_document(root_node) if root_node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "malformed YAML"
        if exc.context and exc.problem:
            problem = f"{exc.problem} ({exc.context})"
        raise ConfigError([ConfigIssue(file, line, "", f"malformed YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(file, None, "", f"malformed YAML: {exc}")]) from None
    finally:
        loader.dispose()
    root_line = root_node.start_mark.line + 1 if root_node is not None else 1
    lines = LineMap(file, data, loader.container_lines, root_line)
    if loader.duplicates:
        paths = _container_paths(data)
        raise ConfigError(
            [
                ConfigIssue(file, line, format_path([*paths.get(container, []), key]), f"duplicate key {key!r}")
                for line, key, container in loader.duplicates
            ]
        )
    return data, lines


def _container_paths(root: Any) -> dict[int, list[PathPart]]:
    """id(container) -> key path, for naming where a duplicate key sits."""
    paths: dict[int, list[PathPart]] = {}
    stack: list[tuple[Any, list[PathPart]]] = [(root, [])]
    while stack:
        node, path = stack.pop()
        if id(node) in paths:
            continue
        if isinstance(node, dict):
            paths[id(node)] = path
            stack.extend((value, [*path, key]) for key, value in node.items())
        elif isinstance(node, list):
            paths[id(node)] = path
            stack.extend((value, [*path, index]) for index, value in enumerate(node))
    return paths


def load_yaml(path: str | Path) -> tuple[Any, LineMap]:
    """Read and parse a YAML file; an unreadable file is a ConfigError naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(str(path), None, "", f"cannot read file: {exc}")]) from None
    return load_yaml_text(text, str(path))


def empty_line_map(file: str, data: Any = None) -> LineMap:
    """A LineMap without line information (for configs given as Python dicts)."""
    return LineMap(file, data, {}, None)


__all__ = ["LineMap", "format_path", "load_yaml", "load_yaml_text", "empty_line_map"]
