#!/bin/sh
# The Chroma server in the foreground, data in /data; extra arguments go to `chroma run`.
exec chroma run --path /data --host "${CHROMA_HOST:-0.0.0.0}" --port "${CHROMA_PORT:-8000}" "$@"
