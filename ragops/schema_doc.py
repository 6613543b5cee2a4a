"""Render the config schema as a markdown reference (used in the README; a test keeps them in sync)."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in args)
    if origin in (list,):
        return f"list of {_type_name(args[0])}"
    if origin in (dict,):
        return f"map of {_type_name(args[1])}"
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return " \\| ".join(_type_name(a) for a in rest) + " or null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def _model(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        for inner in typing.get_args(candidate):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        return "`" + repr(field.default).replace("|", "\\|") + "`"
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return "(section)"
        return "`" + repr(value).replace("|", "\\|") + "`"
    return "required"


def iter_fields(model: type[BaseModel], prefix: str = "") -> typing.Iterator[tuple[str, Any]]:
    """Every field, depth first. The inventory entry lists only what it adds to `defaults`."""
    from .config import HostEntry, HostSettings

    inherited: set[str] = set(HostSettings.model_fields) if model is HostEntry else set()
    if inherited:
        yield f"{prefix}*", None
    for name, field in model.model_fields.items():
        if name in inherited:
            continue
        path = f"{prefix}{name}"
        yield path, field
        sub = _model(field.annotation)
        if sub is not None and sub is not model:
            suffix = "[]." if typing.get_origin(field.annotation) is list else (".<name>." if typing.get_origin(field.annotation) is dict else ".")
            yield from iter_fields(sub, path + suffix)


def make_reference(model: type[BaseModel]) -> str:
    lines = ["| field | type | default | description |", "|---|---|---|---|"]
    for path, field in iter_fields(model):
        if field is None:
            lines.append(f"| `{path}` | | | any setting of `defaults` (same name and type), overriding it for this entry |")
            continue
        lines.append(f"| `{path}` | {_type_name(field.annotation)} | {_default(field)} | {field.description or ''} |")
    return "\n".join(lines)
