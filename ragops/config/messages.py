"""Pydantic validation errors as ``<file>: <dotted.field>: <message>`` lines (with did-you-mean)."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from .schema import HostEntry, RagopsConfig

_MESSAGES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "missing": "required field is missing",
}


def format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _known_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names valid at the parent of ``loc`` (for did-you-mean hints)."""
    current: Any = model
    skip_key = False
    for part in loc[:-1]:
        if skip_key:  # the key of a dict-valued field (hosts.<name>): the value's model applies
            skip_key = False
            continue
        if isinstance(part, int) or current is None:
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                if current is RagopsConfig:
                    return []
                current = None
                continue
            ann = field.annotation
            args = getattr(ann, "__args__", ())
            candidates = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
            current = candidates[0] if candidates else (HostEntry if part == "hosts" else None)
            skip_key = getattr(ann, "__origin__", None) is dict
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def make_error_lines(source: str, error: ValidationError, model: type[BaseModel], prefix: tuple[Any, ...] = ()) -> list[str]:
    lines = []
    for item in error.errors():
        loc = prefix + tuple(item["loc"])
        kind = item["type"]
        if kind == "extra_forbidden":
            msg = "unknown field"
            close = difflib.get_close_matches(str(loc[-1]), _known_fields(model, tuple(item["loc"])), n=1)
            if close:
                msg += f" (did you mean {close[0]!r}?)"
        elif kind == "literal_error":
            msg = "must be one of: " + str(item.get("ctx", {}).get("expected", ""))
        elif kind in _MESSAGES:
            msg = _MESSAGES[kind]
        else:
            msg = item["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            msg = msg[:1].lower() + msg[1:]
            msg = msg.replace("input should be", "must be")
        lines.append(f"{source}: {format_loc(loc)}: {msg}")
    return lines
