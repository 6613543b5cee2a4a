#!/usr/bin/env bash
# Install a schedule for a ragops task: a systemd timer (default when systemd runs) or a crontab line.
#   scripts/install-schedule.sh [--cron] [--task maintain] [--when 'Sun *-*-* 02:00:00' | --cron-expr '0 2 * * 0'] [-- ARGS]
#   scripts/install-schedule.sh --print ...   # show what would be installed, change nothing
#   scripts/install-schedule.sh --task drill --policy /etc/ragops/policies/prod.yaml [-- --host prod1]
# --policy FILE: the cadence comes from the policy (drill: restore_test.drill.cadence, restore-test:
# restore_test.cadence, backup.check: check.cadence, backup: schedule; ragops/drill/schedule.py), and
# the task gets --policy <file name without .yaml>. --task drill schedules `invoke restore-test --drill`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TASK=maintain; WHEN='Sun *-*-* 02:00:00'; CRON='0 2 * * 0'; MODE=auto; PRINT=0; ARGS=(); POLICY=""; SET_WHEN=0; SET_CRON=0
while [ $# -gt 0 ]; do
    case "$1" in
        --cron) MODE=cron ;;
        --systemd) MODE=systemd ;;
        --task) TASK="$2"; shift ;;
        --when) WHEN="$2"; SET_WHEN=1; shift ;;
        --cron-expr) CRON="$2"; SET_CRON=1; shift ;;
        --policy) POLICY="$2"; shift ;;
        --print) PRINT=1 ;;
        --) shift; ARGS=("$@"); break ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$MODE" = auto ]; then
    if [ -d /run/systemd/system ]; then MODE=systemd; else MODE=cron; fi
fi
RUN_TASK="$TASK"; PRE=()
if [ "$TASK" = drill ]; then RUN_TASK=restore-test; PRE=(--drill); fi
if [ -n "$POLICY" ]; then
    OUT="$(cd "$ROOT" && "${RAGOPS_PYTHON:-$ROOT/.venv/bin/python}" -m ragops.drill.schedule "$TASK" "$POLICY")" || exit 2
    IFS=$'\t' read -r P_CRON P_WHEN P_NAME <<< "$OUT"
    if [ "$SET_CRON" = 0 ]; then CRON="$P_CRON"; fi
    if [ "$SET_WHEN" = 0 ]; then WHEN="$P_WHEN"; fi
    PRE+=(--policy "$P_NAME")
elif [ "$TASK" = drill ] && [ "$SET_CRON$SET_WHEN" = 00 ]; then
    echo "--task drill: give --policy FILE (its restore_test.drill.cadence) or --when/--cron-expr" >&2; exit 2
fi
ARGS=(${PRE[@]+"${PRE[@]}"} ${ARGS[@]+"${ARGS[@]}"})
CMD="RAGOPS_TASK=$RUN_TASK $ROOT/scripts/maintenance.sh ${ARGS[*]:-}"
NAME="ragops-$TASK"
if [ "$MODE" = cron ]; then
    LINE="$CRON root $CMD"
    if [ "$PRINT" = 1 ]; then echo "/etc/cron.d/$NAME: $LINE"; exit 0; fi
    printf 'SHELL=/bin/bash\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n%s\n' "$LINE" > "/etc/cron.d/$NAME"
    echo "installed /etc/cron.d/$NAME"
else
    SERVICE="[Unit]
Description=ragops $TASK

[Service]
Type=oneshot
Environment=RAGOPS_TASK=$RUN_TASK
ExecStart=$ROOT/scripts/maintenance.sh ${ARGS[*]:-}
"
    TIMER="[Unit]
Description=ragops $TASK schedule

[Timer]
OnCalendar=$WHEN
Persistent=true
RandomizedDelaySec=300

[Install]
WantedBy=timers.target
"
    if [ "$PRINT" = 1 ]; then printf '%s\n---\n%s' "$SERVICE" "$TIMER"; exit 0; fi
    printf '%s' "$SERVICE" > "/etc/systemd/system/$NAME.service"
    printf '%s' "$TIMER" > "/etc/systemd/system/$NAME.timer"
    systemctl daemon-reload && systemctl enable --now "$NAME.timer"
    echo "installed and started $NAME.timer"
fi
