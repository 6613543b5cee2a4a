"""config.check / config.reference: validate a config, document the schema."""

from __future__ import annotations

import json

from invoke import task

from ..config import RagopsConfig
from ..schema_doc import make_reference
from .common import load


@task(help={"config": "Path to ragops.yaml (default: $RAGOPS_CONFIG, ./ragops.yaml, embedded demo config).",
            "show": "Print every host's effective settings as JSON."})
def check(c, config=None, show=False):
    """Validate ragops.yaml (all errors at once, with file and field) and list the hosts."""
    loaded = load(config)
    print(f"{loaded.source}: ok, {len(loaded.hosts)} host(s): {', '.join(sorted(loaded.hosts))}")
    if show:
        print(json.dumps({n: h.settings.model_dump() for n, h in loaded.hosts.items()}, indent=2))


@task
def reference(c):
    """Print the configuration reference (markdown) generated from the schema."""
    print(make_reference(RagopsConfig))
