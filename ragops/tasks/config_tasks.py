"""config.check / config.reference: validate a config, document the schema."""

from __future__ import annotations

import json
from pathlib import Path

from invoke import task

from ..config import RagopsConfig
from ..schema_doc import make_reference
from .common import load, usage_errors


@task(help={"config": "Path to ragops.yaml (default: $RAGOPS_CONFIG, ./ragops.yaml, embedded demo config).",
            "show": "Print every host's effective settings as JSON."})
def check(c, config=None, show=False):
    """Validate ragops.yaml (all errors at once, with file and field) and list the hosts."""
    with usage_errors("config.check", False):
        loaded = load(config)
    print(f"{loaded.source}: ok, {len(loaded.hosts)} host(s): {', '.join(sorted(loaded.hosts))}")
    if show:
        print(json.dumps({n: h.settings.model_dump() for n, h in loaded.hosts.items()}, indent=2))


START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def make_readme_with_reference(readme: str, reference: str) -> str:
    """README text with the block between the reference markers replaced."""
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{reference}\n{END}{tail}"


@task(help={"write": "Rewrite the reference block in this markdown file (e.g. README.md) instead of printing."})
def reference(c, write=None):
    """Print the configuration reference (markdown) generated from the schema."""
    text = make_reference(RagopsConfig)
    if write:
        path = Path(write)
        path.write_text(make_readme_with_reference(path.read_text(), text))
        print(f"updated the config reference in {path}")
    else:
        print(text)
