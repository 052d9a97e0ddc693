"""Validated configs: defaults, then a YAML file, then `--set a.b=c` overrides.

    >>> from components.dataset.config import DatasetConfig
    >>> load_config(DatasetConfig, None, ["lines_per_passage=30"]).lines_per_passage
    30

Each stage has one pydantic model (`extra="forbid"`, so a typo is an error, not a
silently ignored key). Validation errors become one `TaletuneError` per problem list,
naming the key and what it accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from components.common.errors import TaletuneError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config: unknown keys are errors; assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def read_yaml(path: str | Path) -> dict:
    text = _read_text(str(path))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise TaletuneError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TaletuneError(f"{path} must hold a YAML mapping (key: value), not {type(data).__name__}")
    return data


def _read_text(uri: str) -> str:
    """A config file's text. Only a file that is not there reads as "does not exist": the
    storage layer's own message (S3 refused the credentials, no such bucket) passes
    through, and a folder or bytes that are not UTF-8 each say what they are."""
    from components.common import storage

    if not storage.exists(uri):
        raise TaletuneError(f"config file {uri} does not exist; check the path")
    if not storage.is_s3(uri) and Path(uri).expanduser().is_dir():
        raise TaletuneError(f"{uri} is a folder, not a config file; give the path of the YAML file in it")
    data = storage.read_bytes(uri)  # an unreadable file is the storage layer's one clear error
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TaletuneError(
            f"{uri} is not UTF-8 text (byte {data[exc.start]:#x} on line {line}); save it as UTF-8"
        ) from None


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Apply `a.b=c` strings; values are parsed as YAML, so `n=3` is an int."""
    data = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise TaletuneError(f"override {item!r} must look like key.subkey=value")
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return data


def validate(model: type[M], data: dict, source: str = "config") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(sorted(_field_names(model, err["loc"][:-1])))
                problems.append(f"unknown key {where!r} (known keys here: {allowed})")
            else:
                problems.append(f"{where}: {err['msg']}")
        raise TaletuneError(f"invalid {source}: " + "; ".join(problems)) from None


def _field_names(model: type[BaseModel], loc: tuple) -> list[str]:
    """Known keys of the (nested) model at `loc`, through dicts, lists and optionals."""
    import typing

    node: object = model
    for part in loc:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(part))
            if field is None:
                return []
            node = field.annotation
        else:  # a container: dict[str, X], list[X], X | None
            args = [a for a in typing.get_args(node) if a is not type(None)]
            node = args[-1] if args else None
        while typing.get_origin(node) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            args = [a for a in typing.get_args(node) if a is not type(None)]
            node = args[-1] if args else None
    return list(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []


def load_config(model: type[M], path: str | Path | None = None, overrides: Iterable[str] = ()) -> M:
    data = read_yaml(path) if path else {}
    data = apply_overrides(data, overrides)
    return validate(model, data, source=str(path) if path else "config")


# KFP parameters cannot hold null (its protobuf values have no None), so a config travels
# as its values without the nulls plus the list of keys that were null: "unset" stays unset
# instead of turning back into the default.
NULLS = "_null"


def to_parameter(config: BaseModel) -> dict:
    """A config as a KFP parameter: its values, nulls listed under `_null` by dotted key."""
    nulls: list[str] = []

    def strip(value, path):
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if item is None:
                    nulls.append(".".join([*path, str(key)]))
                else:
                    out[key] = strip(item, [*path, str(key)])
            return out
        return value

    values = strip(config.model_dump(), [])
    return {**values, NULLS: nulls} if nulls else values


def from_parameter(model: type[M], data: dict, source: str = "config") -> M:
    """The config a KFP parameter holds (see `to_parameter`), validated."""
    data = dict(data)
    for key in data.pop(NULLS, []):
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node[part] = dict(node.get(part) or {})
            node = node[part]
        node[last] = None
    return validate(model, data, source)


def from_parameter_with(model: type[M], shared: dict, overrides: dict, source: str = "config") -> M:
    """`from_parameter` of shared settings with a model's own settings on top (nested
    mappings such as lora merge key by key; an override replaces a null)."""
    from components.common.modelspec import merged

    data = merged({k: v for k, v in shared.items() if k != NULLS}, overrides)
    data[NULLS] = [k for k in shared.get(NULLS, []) if k.split(".")[0] not in overrides]
    return from_parameter(model, data, source)
