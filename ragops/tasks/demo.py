"""demo.up / demo.down / demo.status: the embedded sandbox deployment."""

from __future__ import annotations

import json
import shutil

from invoke import Exit, task

from .. import demo as demo_mod
from .. import output
from ..errors import RagopsError


@task(help={"compose": "The demo as a Compose project of the real service images (ragops/chroma, ragops/redis, "
                       "ragops/rag-api from scripts/setup.d/60-images.sh) on the host's docker engine; writes its "
                       "ragops.yaml ($RAGOPS_DEMO_COMPOSE_DIR, default /tmp/ragops-demo-compose)."})
def up(c, compose=False):
    """Create and start the demo deployment (real redis-server, ChromaDB dir, RAG API, old/new files)."""
    if compose:
        up_compose()
        return
    try:
        with output.status("starting the demo deployment"):
            state = demo_mod.up()
    except RagopsError as exc:
        raise Exit(str(exc), code=int(exc.exit_code)) from None
    output.info("demo", f"up in {state['dir']}: redis 127.0.0.1:{state['redis_port']}, API http://127.0.0.1:{state['api_port']}, "
                        f"collections {state['collections']}")
    print(json.dumps(state))


def up_compose() -> None:
    from .. import demo_compose

    try:
        with output.status("starting the Compose demo"):
            state = demo_compose.up()
    except RagopsError as exc:
        raise Exit(str(exc), code=int(exc.exit_code)) from None
    ports = state["ports"]
    output.info("demo", f"Compose project {state['project']} up in {state['dir']}: chroma 127.0.0.1:{ports['chroma']}, "
                        f"redis 127.0.0.1:{ports['redis']}, API http://127.0.0.1:{ports['api']}; "
                        f"invoke maintain --host local --config {state['config']}")
    print(json.dumps(state))


@task(help={"purge": "Also delete the demo directory.",
            "compose": "Remove the Compose demo: its containers, volumes and project directory."})
def down(c, purge=False, compose=False):
    """Stop the demo processes by pid (and with --purge remove its directory)."""
    if compose:
        from .. import demo_compose

        left = demo_compose.down()
        if left:
            raise Exit(f"demo.down --compose: still left: {', '.join(left)}", code=1)
        output.info("demo", f"Compose demo removed: containers, volumes and {demo_compose.compose_dir()}")
        return
    stopped = demo_mod.down()
    output.info("demo", f"stopped: {', '.join(stopped) or 'nothing was running'}")
    if purge:
        shutil.rmtree(demo_mod.demo_dir(), ignore_errors=True)
        output.info("demo", f"removed {demo_mod.demo_dir()}")


@task
def status(c):
    """Show the demo deployment's directory, ports and whether its processes run."""
    root = demo_mod.demo_dir()
    state = demo_mod.read_state(root)
    print(json.dumps({"dir": str(root), **state, "redis_up": demo_mod.port_open(state["redis_port"]),
                      "api_up": demo_mod.port_open(state["api_port"])}))
