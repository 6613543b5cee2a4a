"""demo.up / demo.down / demo.status: the embedded sandbox deployment."""

from __future__ import annotations

import json
import shutil

from invoke import Exit, task

from .. import demo as demo_mod
from .. import output
from ..errors import RagopsError


@task
def up(c):
    """Create and start the demo deployment (real redis-server, ChromaDB dir, RAG API, old/new files)."""
    try:
        with output.status("starting the demo deployment"):
            state = demo_mod.up()
    except RagopsError as exc:
        raise Exit(str(exc), code=int(exc.exit_code)) from None
    output.info("demo", f"up in {state['dir']}: redis 127.0.0.1:{state['redis_port']}, API http://127.0.0.1:{state['api_port']}, "
                        f"collections {state['collections']}")
    print(json.dumps(state))


@task(help={"purge": "Also delete the demo directory."})
def down(c, purge=False):
    """Stop the demo processes by pid (and with --purge remove its directory)."""
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
