"""restic `check`, `restore` and `copy`: reading snapshot data back (verified in place, into a
directory on the host, or into another repository)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

from ..errors import ConfigError
from ..resources import wrap_nice
from ..seam import Target
from .errors import RepoDamagedError, ResticError
from .repository import Repo, detect_version, make_restic_command, make_secrets, run_restic


@dataclass
class CheckResult:
    ok: bool
    output: str
    read_data_subset: str | None


def check(target: Target, repo: Repo, read_data_subset: str | None = None, *, raise_on_damage: bool = True) -> CheckResult:
    """`restic check [--read-data-subset X]`; text output (0.14 has no check --json)."""
    args = ["check"] + ([f"--read-data-subset={read_data_subset}"] if read_data_subset else [])
    try:
        res = run_restic(target, repo, args, json=False, command=wrap_nice(target, make_restic_command(repo, args)))
    except ResticError as exc:
        if type(exc) is not ResticError:  # missing, password, lock, unreachable: not damage
            raise
        if raise_on_damage:
            raise RepoDamagedError(f"{target.name}: {repo.describe()}: check found problems: {str(exc)[-800:]}") from None
        return CheckResult(ok=False, output=str(exc), read_data_subset=read_data_subset)
    return CheckResult(ok=True, output=res.stdout, read_data_subset=read_data_subset)


_RESTORING = re.compile(r"restoring <Snapshot ([0-9a-f]{8,64}) of")


def parse_restored_snapshot(text: str) -> str | None:
    """The (short) id restic names in its `restoring <Snapshot 1a2b3c4d of [...]` line, if any."""
    match = _RESTORING.search(text or "")
    return match.group(1) if match else None


def restore(target: Target, repo: Repo, snapshot_id: str, target_dir: str, include: list[str] | None = None, *,
            host: str | None = None, tags: list[str] | None = None) -> str:
    """Restore a snapshot (or `latest`, filtered by ``host`` and ``tags``) into target_dir on the
    host. A write. Returns restic's text output (see ``parse_restored_snapshot``)."""
    if not os.path.isabs(target_dir):
        raise ConfigError(f"restore target {target_dir!r} must be an absolute path")
    args = ["restore", snapshot_id, "--target", target_dir]
    if snapshot_id == "latest":
        args += ["--host", host] if host else []
        args += ["--tag", ",".join(tags)] if tags else []
    for pattern in include or []:
        args += ["--include", pattern]
    if target.dry and detect_version(target, repo) >= (0, 17, 0):
        args.append("--dry-run")
        return run_restic(target, repo, args, json=False, command=wrap_nice(target, make_restic_command(repo, args))).stdout
    return run_restic(target, repo, args, json=False, write=True,
                      command=wrap_nice(target, make_restic_command(repo, args))).stdout  # resources.nice/ionice


def make_copy_command(src: Repo, dst: Repo, snapshot_ids: list[str]) -> str:
    """`restic -r DST ... copy --from-repo SRC [--from-password-file|--from-password-command] IDS`."""
    src_opts, dst_opts = dict(src.options), dict(dst.options)
    conflicts = {k for k in src_opts.keys() & dst_opts.keys() if src_opts[k] != dst_opts[k]}
    if conflicts:  # one restic process, one value per backend option
        raise ResticError(f"copy: {src.url} and {dst.url} need different values for {', '.join(sorted(conflicts))}")
    merged = replace(dst, options=tuple(sorted({**dict(src.options), **dict(dst.options)}.items())))
    args = ["copy", "--from-repo", src.url]
    if src.password_file:
        args += ["--from-password-file", src.password_file]
    elif src.password_command:
        args += ["--from-password-command", src.password_command]
    return make_restic_command(merged, args + list(snapshot_ids))


def copy(target: Target, src: Repo, dst: Repo, snapshot_ids: list[str]) -> None:
    """Copy snapshots to another repository (the off-site copy). A write."""
    cmd = make_copy_command(src, dst, snapshot_ids)
    secrets = make_secrets((src, "FROM_"), (dst, ""))
    run_restic(target, dst, [], json=False, write=True, what="copy", command=cmd, secrets=secrets)
