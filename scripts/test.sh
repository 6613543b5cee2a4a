#!/usr/bin/env bash
# Set up (idempotent) and run lint, typecheck and the test suite.
# Extra arguments are passed to pytest:  bash scripts/test.sh -k services
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/nox -s lint typecheck tests -- "$@"
