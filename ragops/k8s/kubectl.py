"""kubectl, run on the controller through the seam (``run_local``: argv, no shell, no secrets in argv).

Reads always run. Writes under ``--dry`` become server-side dry runs (``--dry-run=server``) when the
API server is reachable, so the plan is checked by the real admission chain; otherwise they are only
printed. The binary is ``$RAGOPS_KUBECTL`` or ``kubectl``; ``--kubeconfig``/``--context`` pass through.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

import yaml

from .. import output
from ..errors import StepError
from ..seam import CmdResult, run_local


class KubectlError(StepError):
    """A kubectl command failed; the message names the command and kubectl's own error."""


@dataclass
class Kubectl:
    binary: str = field(default_factory=lambda: os.environ.get("RAGOPS_KUBECTL", "kubectl"))
    kubeconfig: str | None = None
    context: str | None = None
    dry: bool = False
    label: str = "k8s"
    timeout_s: float = 120.0
    _reachable: bool | None = None

    def make_argv(self, args: list[str], namespace: str | None = None) -> list[str]:
        argv = [self.binary]
        if self.kubeconfig:
            argv += ["--kubeconfig", self.kubeconfig]
        if self.context:
            argv += ["--context", self.context]
        if namespace:
            argv += ["--namespace", namespace]
        return argv + list(args)

    def reachable(self) -> bool:
        if self._reachable is None:
            res = run_local(self.make_argv(["get", "--raw", "/version", "--request-timeout=5s"]), timeout=15)
            self._reachable = res.ok
        return self._reachable

    def run(self, args: list[str], *, namespace: str | None = None, write: bool = False, stdin: str | None = None,
            check: bool = True, timeout: float | None = None) -> CmdResult:
        """Run kubectl. A write under --dry is a server-side dry run if possible, else only shown."""
        if write and self.dry:
            if not self.reachable():
                shown = shlex.join(self.make_argv(args, namespace))
                output.dry_command(self.label, shown + " (API server unreachable: not checked)")
                return CmdResult(command=shown, dry=True)
            args = [*args, "--dry-run=server"]
        argv = self.make_argv(args, namespace)
        output.debug(self.label, shlex.join(argv))
        res = run_local(argv, input_text=stdin, timeout=timeout or self.timeout_s)
        if write and self.dry:
            output.dry_command(self.label, f"{res.command} -> {(res.stdout or res.stderr).strip()[:300]}")
            res.dry = True
        if check and not res.ok:
            raise KubectlError(f"kubectl {' '.join(args[:3])} failed (exit {res.exited}): {res.stderr.strip()[-600:]}")
        return res

    def get(self, kind: str, name: str | None = None, *, namespace: str | None = None,
            selector: str | None = None) -> dict[str, Any] | None:
        """The object (or a List) as a dict; None if it does not exist."""
        args = ["get", kind] + ([name] if name else []) + (["-l", selector] if selector else []) + ["-o", "json"]
        res = self.run(args, namespace=namespace, check=False)
        if not res.ok:
            if "NotFound" in res.stderr or "not found" in res.stderr:
                return None
            raise KubectlError(f"kubectl get {kind} {name or ''} failed: {res.stderr.strip()[-600:]}")
        return json.loads(res.stdout)

    def items(self, kind: str, *, namespace: str | None = None, selector: str | None = None) -> list[dict[str, Any]]:
        found = self.get(kind, namespace=namespace, selector=selector)
        return list((found or {}).get("items", []))

    def apply(self, objs: list[dict[str, Any]], *, namespace: str | None = None) -> CmdResult:
        text = "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objs)
        return self.run(["apply", "-f", "-"], namespace=namespace, write=True, stdin=text)

    def create(self, obj: dict[str, Any]) -> CmdResult:
        return self.run(["create", "-f", "-"], write=True, stdin=json.dumps(obj))

    def delete(self, kind: str, name: str, *, namespace: str | None = None, wait: bool = False) -> CmdResult:
        args = ["delete", kind, name, "--ignore-not-found", f"--wait={'true' if wait else 'false'}"]
        return self.run(args, namespace=namespace, write=True)


def wait_for(check: Any, *, timeout_s: float, interval_s: float = 1.0) -> Any:
    """Poll ``check()`` until it returns something truthy; None after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(interval_s, max(0.0, deadline - time.monotonic())))
