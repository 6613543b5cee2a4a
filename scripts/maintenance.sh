#!/usr/bin/env bash
# Cron/systemd wrapper around `invoke maintain` (the maintenance guide's maintenance.sh, as code), or
# the task in $RAGOPS_TASK (e.g. RAGOPS_TASK=restore-test ... --drill: the scheduled drill).
#   scripts/maintenance.sh [--host prod1] [any invoke maintain flags]
# Logs every run with timestamps to $RAGOPS_LOG (default /var/log/ragops/<task>.log), keeps the
# exit code, and relies on ragops' own lock, metrics textfiles and pings for alerting.
set -uo pipefail
ROOT="${RAGOPS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
TASK="${RAGOPS_TASK:-maintain}"
LOG="${RAGOPS_LOG:-/var/log/ragops/$TASK.log}"
mkdir -p "$(dirname "$LOG")"
cd "$ROOT" || exit 2
{
    echo "=== ragops $TASK start $(date -u +%Y-%m-%dT%H:%M:%SZ) args: $*"
    "$ROOT/.venv/bin/invoke" "$TASK" "$@"
    rc=$?
    echo "=== ragops $TASK end $(date -u +%Y-%m-%dT%H:%M:%SZ) exit $rc"
    exit $rc
} >> "$LOG" 2>&1
