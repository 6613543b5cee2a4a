"""Run ragops' cleanup step in this process (and so in its mount namespace: the tests start it under
``unshare -m`` after their bind mounts), once per MODE, through a chosen shell.

    python cleanup_in_namespace.py CONFIG SHELL MODE...   (MODE: dry | real)

Prints one JSON list: per run, the step's status and details. Not a test module (no ``test_`` prefix).
"""

from __future__ import annotations

import json
import sys

from ragops.config import load_config
from ragops.seam import Target
from ragops.steps.cleanup import run_cleanup


def main() -> None:
    config, shell, *modes = sys.argv[1:]
    loaded = load_config(config, environ={})
    runs = []
    for mode in modes:
        target = Target(host=loaded.hosts["local"], dry=mode == "dry")
        target.connection().config.run.shell = shell  # Invoke runs [shell, "-c", command]
        result = run_cleanup(target)
        runs.append({"status": result.status, "message": result.message, "details": result.details})
    print(json.dumps(runs))


if __name__ == "__main__":
    main()
