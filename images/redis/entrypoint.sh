#!/bin/sh
# redis-server in the foreground with its data in /data; port and bind addresses from the env.
set -f  # REDIS_BIND may hold '*': split it into words, never glob it
# shellcheck disable=SC2086
exec redis-server --port "${REDIS_PORT:-6379}" --bind ${REDIS_BIND:-* -::*} --protected-mode no --dir /data "$@"
