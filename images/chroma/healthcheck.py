"""HEALTHCHECK of the chroma image: GET /api/v2/heartbeat on CHROMA_HOST:CHROMA_PORT (a wildcard host -> 127.0.0.1)."""
import os
import sys
import urllib.request

host = os.environ.get("CHROMA_HOST") or "127.0.0.1"
host = "127.0.0.1" if host in ("0.0.0.0", "::", "*") else host
try:
    urllib.request.urlopen(f"http://{host}:{os.environ.get('CHROMA_PORT') or 8000}/api/v2/heartbeat", timeout=2.5)
except OSError as exc:
    sys.exit(f"chroma heartbeat: {exc}")
