#!/usr/bin/env bash
# One command: install what is missing, create the embedded demo deployment (real redis-server,
# real ChromaDB dir, a small RAG API, old and new log/temp files) and run `invoke maintain` on it.
#   bash scripts/demo.sh            # maintain for real (deletes the demo's old files)
#   bash scripts/demo.sh --dry      # extra arguments go to `invoke maintain`
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RAGOPS_SETUP_HOOKS=0 bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
invoke demo.up >/dev/null
exec invoke maintain --host local "$@"
