"""Finding and reading search-space YAML files (shipped ones by name, or a user's file by path)."""

from __future__ import annotations

import importlib.resources
import os
from typing import Any

import yaml

from lpgnas.errors import ConfigError, DataError
from lpgnas.search_spaces._space import SearchSpace

__all__ = ["list_spaces", "load_space", "space_path", "parse_space_yaml"]

_SUFFIXES = (".yaml", ".yml")


def _package_dir():
    return importlib.resources.files("lpgnas.search_spaces")


def list_spaces() -> tuple[str, ...]:
    """Names of the shipped search spaces (the YAML file stems), sorted."""
    names = [p.name[: -len(".yaml")] for p in _package_dir().iterdir() if p.name.endswith(".yaml")]
    return tuple(sorted(names))


def _is_name(value: str) -> bool:
    return os.sep not in value and "/" not in value and not value.endswith(_SUFFIXES)


def space_path(name: str) -> str:
    """The path of the shipped space ``name`` (copy it to start your own space)."""
    if name not in list_spaces():
        raise ConfigError(
            "space",
            f"unknown search space {name!r}; shipped: {', '.join(list_spaces())} (or give a path to a YAML file)",
        )
    return str(_package_dir() / f"{name}.yaml")


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses a key given twice in one mapping (a common copy-and-edit slip
    that plain YAML resolves silently by keeping the last value)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: let the default constructor report it
            break
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
            )
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_space_yaml(text: str, *, source: object = "<string>", name: str = "custom") -> SearchSpace:
    """Parse and validate the YAML ``text`` of a search space; ``source`` names it in errors."""
    try:
        obj = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise DataError(source, f"not valid YAML{where}: {problem}") from None
    return SearchSpace.from_json(obj, source=source, name=name)


def load_space(name_or_path: str | os.PathLike | SearchSpace) -> SearchSpace:
    """Load a search space: a shipped name (see :func:`list_spaces`, e.g. ``"lpgnas"``,
    ``"sgquant"``, ``"tiny"``) or the path of a YAML file. A :class:`SearchSpace` is returned as is.

    Raises :class:`~lpgnas.errors.ConfigError` (unknown name, or a bad field, named with the file)
    or :class:`~lpgnas.errors.DataError` (missing file, YAML syntax error with its line).
    """
    if isinstance(name_or_path, SearchSpace):
        return name_or_path
    if isinstance(name_or_path, str) and _is_name(name_or_path):
        path = space_path(name_or_path)
    else:
        path = os.fspath(name_or_path)
    stem = os.path.splitext(os.path.basename(path))[0]
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise DataError(path, "no such search-space file") from None
    except IsADirectoryError:
        raise DataError(path, "is a directory, not a search-space file") from None
    except UnicodeDecodeError as e:
        raise DataError(path, f"not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    return parse_space_yaml(text, source=path, name=stem)
