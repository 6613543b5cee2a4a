"""The embedded demo deployment's configuration: where it lives and the ragops.yaml used when none
is found. Pure and stdlib-only, so ``config`` can use it without importing the demo's processes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

DEFAULT_DIR = "/tmp/ragops-demo"
DEFAULT_REDIS_PORT = 6390
DEFAULT_API_PORT = 8790
COLLECTIONS = {"docs": 240, "faq": 60}
DIMENSION = 16
DAY = 86400


def demo_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("RAGOPS_DEMO_DIR", DEFAULT_DIR))


def read_state(root: Path) -> dict[str, int]:
    try:
        return json.loads((root / "run" / "state.json").read_text())
    except (OSError, ValueError):
        return {"redis_port": DEFAULT_REDIS_PORT, "api_port": DEFAULT_API_PORT}


def make_demo_config_text(environ: dict[str, str] | None = None) -> str:
    """The config used when there is no ragops.yaml: `local` maintains the demo deployment."""
    root = demo_dir(environ)
    state = read_state(root)
    return f"""# embedded demo config (no ragops.yaml found): maintains the demo deployment in {root}
defaults:
  deployment: bare
  api: {{url: "http://127.0.0.1:{state['api_port']}", timeout_s: 3, retries: 1, expect_body: ok}}
  redis: {{host: 127.0.0.1, port: {state['redis_port']}}}
  chroma: {{data_dir: "{root}/chroma"}}
  logs: [{{root: "{root}/logs", patterns: ["*.log"], max_age_days: 7}}]
  temp: [{{root: "{root}/tmp", patterns: ["*"], max_age_days: 1}}]
  logrotate: {{path: "{root}/logrotate.d/ragops", size: 10M, rotate: 3}}
  lock_path: "{root}/run/ragops.lock"
  metrics_dir: "{root}/metrics"
  disk: {{warn_percent: 95, fail_percent: 98}}
  backup: {{policy: demo, policies_dir: "{root}/policies", staging_dir: "{root}/staging", chroma_python: "{sys.executable}"}}
  steps: [cleanup, logrotate, health, backup]
"""
