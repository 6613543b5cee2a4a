"""Velero's API types (PyPI cloudcoil-models-velero, generated from Velero's CRDs) as schemas.

- ``make_strict_schema(kind)``: JSON schema that rejects unknown fields everywhere (the pydantic
  models themselves accept them), for the offline validation tier.
- ``make_crd(kind)``: an apiextensions.k8s.io/v1 CustomResourceDefinition with a structural
  openAPIV3Schema generated from the same types, installed into the test API server.
"""

from __future__ import annotations

import copy
from typing import Any

KINDS = {"Backup": "backups", "Restore": "restores", "Schedule": "schedules",
         "BackupStorageLocation": "backupstoragelocations"}


def load_model(kind: str) -> Any:
    from cloudcoil.models.velero import v1

    return getattr(v1, kind)


def raw_schema(kind: str) -> dict[str, Any]:
    return load_model(kind).model_json_schema(by_alias=True, mode="validation")


def _resolve(node: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    if depth > 40:
        raise ValueError("schema nesting too deep (recursive type?)")
    if isinstance(node, list):
        return [_resolve(n, defs, depth + 1) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _resolve(copy.deepcopy(defs[node["$ref"].split("/")[-1]]), defs, depth + 1)
    return {k: _resolve(v, defs, depth + 1) for k, v in node.items() if k != "$defs"}


def _strip_null(node: dict[str, Any]) -> dict[str, Any]:
    options = node.get("anyOf")
    if options:
        rest = [o for o in options if o.get("type") != "null"]
        if len(rest) == 1:
            merged = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
            return {**rest[0], **merged}
    return node


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _strict(v) for k, v in _strip_null(node).items()}
    if "properties" in node:
        node["additionalProperties"] = False
    return node


def make_strict_schema(kind: str) -> dict[str, Any]:
    """JSON schema of the kind with additionalProperties: false on every object with known fields."""
    schema = raw_schema(kind)
    resolved = _resolve(schema, schema.get("$defs", {}))
    resolved["required"] = sorted(set(resolved.get("required", [])) | {"apiVersion", "kind", "metadata"})
    resolved["properties"]["apiVersion"] = {"const": "velero.io/v1"}
    resolved["properties"]["kind"] = {"const": kind}
    return _strict(resolved)


def _structural(node: dict[str, Any]) -> dict[str, Any]:
    node = _strip_null(node)
    if "anyOf" in node:  # e.g. int-or-string
        types = {o.get("type") for o in node["anyOf"]}
        if types <= {"integer", "string", "number"}:
            return {"x-kubernetes-int-or-string": True}
        return {"x-kubernetes-preserve-unknown-fields": True}
    out: dict[str, Any] = {}
    if "const" in node:
        return {"type": "string", "enum": [node["const"]]}
    kind = node.get("type")
    if kind is None:
        return {"x-kubernetes-preserve-unknown-fields": True}
    out["type"] = kind
    for key in ("enum", "format", "description"):
        if key in node and not (key == "format" and node[key] not in ("date-time", "int64", "int32")):
            out[key] = node[key]
    if kind == "object":
        if "properties" in node:
            out["properties"] = {k: _structural(v) for k, v in node["properties"].items()}
        elif isinstance(node.get("additionalProperties"), dict) and node["additionalProperties"]:
            out["additionalProperties"] = _structural(node["additionalProperties"])
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    if kind == "array":
        out["items"] = _structural(node.get("items") or {})
    return out


def make_crd(kind: str) -> dict[str, Any]:
    """A CRD for velero.io/v1 <kind>, schema generated from the API types (no status subresource)."""
    schema = raw_schema(kind)
    resolved = _resolve(schema, schema.get("$defs", {}))
    props = resolved["properties"]
    body = {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        **{k: _structural(v) for k, v in props.items() if k in ("spec", "status")}}}
    plural = KINDS[kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.velero.io"},
        "spec": {"group": "velero.io", "scope": "Namespaced",
                 "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": body}}]},
    }


def validate_strict(obj: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError if the Velero object has an unknown or mistyped field."""
    import jsonschema

    if obj.get("apiVersion") != "velero.io/v1" or obj.get("kind") not in KINDS:
        raise ValueError(f"not a known Velero kind: {obj.get('apiVersion')}/{obj.get('kind')}")
    jsonschema.validate(obj, make_strict_schema(obj["kind"]))
    load_model(obj["kind"]).model_validate(obj)
