"""Finding the config file and reading YAML: UTF-8 only, duplicate keys refused, every problem
one ConfigError naming file, line and column."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .schema import CONFIG_NAME


def find_config_path(explicit: str | None, environ: dict[str, str] | None = None) -> Path | None:
    """--config > RAGOPS_CONFIG > ./ragops.yaml; None means: use the embedded demo config."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (from --config)")
        return path
    env = (os.environ if environ is None else environ).get("RAGOPS_CONFIG")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (from RAGOPS_CONFIG)")
        return path
    path = Path.cwd() / CONFIG_NAME
    return path if path.is_file() else None


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~20x faster on a big inventory


class UniqueKeyLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """yaml's safe loader that refuses a mapping with the same key twice (YAML says keys are unique;
    PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                scalar = isinstance(key_node, yaml.ScalarNode)  # cheap: no second construction
                key = (key_node.tag, key_node.value) if scalar else self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                    seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # an unhashable key: the constructor below reports it
                    continue
                if first is not None:
                    shown = key[1] if scalar else key
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {shown!r} (first at line {first})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor("tag:yaml.org,2002:map", UniqueKeyLoader.construct_yaml_map)


def describe_bad_utf8(data: bytes, exc: UnicodeDecodeError) -> str:
    line = data.count(b"\n", 0, exc.start) + 1
    column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
    return f"line {line}, column {column}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8"


def read_yaml(path: Path | str, text: str | None = None) -> Any:
    """Parse YAML, turning every problem (unreadable, not UTF-8, syntax, duplicate key) into one
    ConfigError naming the file, line and column."""
    try:
        if text is None:
            data = Path(path).read_bytes()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{path}: {describe_bad_utf8(data, exc)}") from None
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        kind = "" if str(problem).startswith("duplicate key") else "invalid YAML: "
        raise ConfigError(f"{path}: {where}{kind}{problem}") from None
