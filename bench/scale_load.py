"""Query load on the live Chroma server for bench_scale: one query every --interval seconds, alternating
the collections, each logged as `start_wall latency_s ok` (one line, flushed) to --log.

    python bench/scale_load.py --port P --log FILE [--interval 0.05] [--k 10] [--dims 384]

A failed query (server stopped by the `stop` strategy, timeout) is logged with ok=0 and retried
after a short pause, so the log also shows how long the store was unavailable. Stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

os.environ["ANONYMIZED_TELEMETRY"] = "False"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--collections", default="docs,faq")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    import chromadb
    import numpy as np
    from chromadb.config import Settings

    rng = np.random.default_rng(int(time.time()))
    names = args.collections.split(",")
    client, cols = None, {}
    out = open(args.log, "a", buffering=1)  # noqa: SIM115 - line-buffered for the whole run
    i = 0
    while True:
        t0 = time.time()
        ok = 1
        try:
            if client is None:
                client = chromadb.HttpClient(host="127.0.0.1", port=args.port,
                                             settings=Settings(anonymized_telemetry=False))
                cols = {n: client.get_collection(n) for n in names}
            cols[names[i % len(names)]].query(query_embeddings=[rng.normal(size=args.dims).tolist()],
                                              n_results=args.k, include=[])
        except Exception:  # noqa: BLE001 - any failure counts as an unavailable store
            ok, client = 0, None
        latency = time.time() - t0
        out.write(f"{t0:.4f} {latency:.5f} {ok}\n")
        i += 1
        time.sleep(max(0.0, args.interval - latency) if ok else 0.05)


if __name__ == "__main__":
    main()
