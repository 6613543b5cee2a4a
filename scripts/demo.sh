#!/usr/bin/env bash
# One command: install what is missing, create the embedded demo deployment (real redis-server,
# real ChromaDB dir, a small RAG API, old and new log/temp files) and run `invoke maintain` on it.
#   bash scripts/demo.sh            # maintain for real (deletes the demo's old files)
#   bash scripts/demo.sh --dry      # extra arguments go to `invoke maintain`
#   bash scripts/demo.sh --compose  # the demo as a Compose project of the real service images
#                                   # (docker + the images of scripts/setup.d/60-images.sh needed);
#                                   # remove it with `invoke demo.down --compose`
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RAGOPS_SETUP_HOOKS=0 bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
if [ "${1:-}" = "--compose" ]; then
    shift
    invoke demo.up --compose >/dev/null
    exec invoke maintain --host local --config "${RAGOPS_DEMO_COMPOSE_DIR:-/tmp/ragops-demo-compose}/ragops.yaml" "$@"
fi
invoke demo.up >/dev/null
exec invoke maintain --host local "$@"
