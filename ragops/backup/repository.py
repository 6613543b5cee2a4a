"""A restic repository as seen from one host: how to build every restic command, run it through the
seam, detect the restic version, and turn restic's failures into clear errors.

restic runs ON the host that holds the data (``target.run``). The repository password reaches it
only as ``--password-file FILE`` / ``--password-command CMD`` (paths/commands on the host) or, for
``password_env``, as ``RESTIC_PASSWORD`` through the seam's stdin secrets; S3 keys only as
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` the same way. No secret is ever in argv.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .. import interrupts, output
from ..errors import Interrupted, RagopsError
from ..seam import CmdResult, Target, Tool, quote
from ..steps.secrets import read_secret
from .errors import (
    RepoLockedError,
    RepoMissingError,
    RepoUnreachableError,
    ResticError,
    ResticNotFoundError,
    WrongPasswordError,
)
from .policy import RepositorySettings

T = TypeVar("T")
Version = tuple[int, int, int]
STALE_LOCK_AGE_S = 30 * 60  # restic's own rule: a lock not refreshed for 30 minutes is stale


@dataclass(frozen=True)
class Repo:
    """Everything needed to run restic against one repository from one host."""

    url: str
    restic: str = "restic"
    password_file: str | None = None
    password_command: str | None = None
    cache_dir: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    role: str = "primary"  # label in messages: primary | secondary
    create_bucket: bool = True  # s3: init may create a missing bucket (boto3, from the controller)
    secrets: dict[str, str] = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3:")

    @property
    def local_path(self) -> str | None:
        """The directory of a local repository (`/path` or `local:/path`), else None."""
        path = self.url.removeprefix("local:")
        return path.rstrip("/") or "/" if path.startswith("/") else None

    def describe(self) -> str:
        return f"{self.role} repository {self.url}"

    @property
    def tool(self) -> Tool:
        """restic as the seam's ``requires=``: missing on the host raises ResticNotFoundError."""
        return Tool("restic", self.restic, "backup.restic", error=ResticNotFoundError)


def make_repo(target: Target, settings: RepositorySettings, *, role: str = "primary") -> Repo:
    """A Repo from policy settings and the host's `backup.restic`; reads controller-side secrets."""
    secrets: dict[str, str] = {}
    if settings.password_env:
        value = read_secret(file=None, env=settings.password_env, what=f"{role} repository password")
        secrets["RESTIC_PASSWORD"] = value or ""
    options = dict(settings.options)
    if settings.s3 is not None:
        s3 = settings.s3
        key_id = read_secret(file=s3.access_key_file, env=s3.access_key_env, what=f"{role} repository S3 access key")
        secret = read_secret(file=s3.secret_key_file, env=s3.secret_key_env, what=f"{role} repository S3 secret key")
        secrets["AWS_ACCESS_KEY_ID"] = key_id or ""
        secrets["AWS_SECRET_ACCESS_KEY"] = secret or ""
        if s3.region:
            options.setdefault("s3.region", s3.region)
    if settings.sftp_command:
        options["sftp.command"] = settings.sftp_command
    return Repo(url=settings.url, restic=target.settings.backup.restic, password_file=settings.password_file,
                password_command=settings.password_command, cache_dir=settings.cache_dir,
                options=tuple(sorted(options.items())), role=role, secrets=secrets,
                create_bucket=settings.s3.create_bucket if settings.s3 else True)


def make_restic_command(repo: Repo, args: list[str], *, json: bool = False) -> str:
    """`restic -r URL [--cache-dir D] [--password-file F | --password-command C] [-o k=v]... [--json] ARGS`."""
    parts = [quote(repo.restic), "-r", quote(repo.url)]
    if repo.cache_dir:
        parts += ["--cache-dir", quote(repo.cache_dir)]
    if repo.password_file:
        parts += ["--password-file", quote(repo.password_file)]
    elif repo.password_command:
        parts += ["--password-command", quote(repo.password_command)]
    for key, value in repo.options:
        parts += ["-o", quote(f"{key}={value}")]
    if json:
        parts.append("--json")
    return " ".join(parts + [quote(a) for a in args])


# ---------------------------------------------------------------- errors

_LOCKED = re.compile(r"repository is already locked (?:exclusively )?by PID (\d+) on (\S+) by")
_AGE = re.compile(r"lock was created at [^(]*\(([^)]*) ago\)")


def parse_go_duration(text: str) -> float | None:
    """`1h2m3.5s`, `1.86s`, `350ms` -> seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(ms|us|µs|ns|h|m|s)", text)
    if not parts:
        return None
    return sum(float(n) * units[u] for n, u in parts)


def classify_failure(repo: Repo, target_name: str, res: CmdResult, what: str) -> ResticError:
    """restic's failure (text of 0.14, exit codes 10/11/12 of >= 0.17) as one clear error."""
    err = (res.stderr or "").strip()
    last = err.splitlines()[-1] if err else f"exit {res.exited}"
    where = f"{target_name}: {repo.describe()}"
    # exit 127 is the seam's (``requires=repo.tool``); this catches a wrapper's own "not found"
    if re.search(r"(restic|" + re.escape(repo.restic) + r"): (command )?not found", err):
        return ResticNotFoundError(f"{target_name}: restic binary {repo.restic!r} not found on the host (install restic, or set backup.restic)")
    locked = _LOCKED.search(err)
    if locked or res.exited == 11:
        pid = int(locked.group(1)) if locked else None
        host = locked.group(2) if locked else None
        age_match = _AGE.search(err)
        age = parse_go_duration(age_match.group(1)) if age_match else None
        holder = f"PID {pid} on {host}" if locked else "another process"
        return RepoLockedError(f"{where} is locked by {holder}" + (f" (lock created {age:.0f}s ago)" if age is not None else ""),
                               pid=pid, lock_host=host, age_s=age)
    if re.search(r"connection refused|no such host|i/o timeout|network is unreachable|ssh: connect|"
                 r"subprocess ssh|unable to start the sftp session|Connection closed", err, re.I):
        return RepoUnreachableError(f"{where} is unreachable: {last[-300:]}")
    if res.exited == 12 or "wrong password or no key found" in err:
        return WrongPasswordError(f"{where}: wrong password (no key in the repository opens with it)")
    if (res.exited == 10 or "Is there a repository at the following location?" in err
            or "unable to open config file" in err or "repository does not exist" in err):
        return RepoMissingError(f"{where} does not exist: run `invoke backup.init --host {target_name}`")
    return ResticError(f"{where}: restic {what} failed (exit {res.exited}): {err[-600:] or 'no output'}")


# ---------------------------------------------------------------- running


def detect_version(target: Target, repo: Repo) -> Version:
    """`restic version` on the host, learned once per run (a fact of the Target) per binary."""
    version: Version = target.fact(("restic version", repo.restic), lambda: _ask_version(target, repo))
    return version


def _ask_version(target: Target, repo: Repo) -> Version:
    res = target.run(f"{quote(repo.restic)} version", requires=repo.tool)
    match = re.search(r"restic (\d+)\.(\d+)\.(\d+)", res.stdout)
    if not res.ok or not match:
        raise classify_failure(repo, target.name, res, "version") if res.exited else ResticError(
            f"{target.name}: cannot parse `{repo.restic} version` output: {res.stdout.strip()[:200]!r}")
    return (int(match.group(1)), int(match.group(2)), int(match.group(3)))


_PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError as exc:
    print(exc); sys.exit(3)
"""


def make_endpoint(url: str) -> tuple[str, int] | None:
    """(host, port) of an s3:/rest: URL's HTTP endpoint; None for local and sftp repositories."""
    match = re.match(r"^(?:s3:|rest:)(?:(https?)://)?(?:[^@/]*@)?(\[[^\]]+\]|[^/:]+)(?::(\d+))?", url)
    if not match or url.startswith(("sftp:", "/")):
        return None
    scheme, host, port = match.groups()
    return host.strip("[]"), int(port) if port else (80 if scheme == "http" else 443)


def check_reachable(target: Target, repo: Repo, timeout_s: float = 5.0) -> None:
    """Probe an S3/REST endpoint from the host before restic runs: restic >= 0.17 retries a refused
    connection for many minutes. Needs python3 on the host; skipped without it."""
    endpoint = make_endpoint(repo.url)
    if endpoint is None:
        return
    host, port = endpoint

    def probe() -> bool | None:  # True: reachable (kept for this run); None: ask again next time
        res = target.run(f"{target.python} -c {quote(_PROBE)} {quote(host)} {port} {timeout_s}", timeout=timeout_s + 30)
        if res.exited == 3:
            raise RepoUnreachableError(f"{target.name}: {repo.describe()} is unreachable from the host: "
                                       f"{host}:{port}: {res.stdout.strip()[:200]}")
        return True if res.ok else None

    target.fact(("endpoint reachable", repo.url), probe)


def make_secrets(*repos_and_prefixes: tuple[Repo, str]) -> dict[str, str]:
    """Environment secrets for a command touching several repositories (copy: FROM_ prefix for the source)."""
    out: dict[str, str] = {}
    for repo, prefix in repos_and_prefixes:
        for name, value in repo.secrets.items():
            key = name.replace("RESTIC_", f"RESTIC_{prefix}") if prefix else name
            if key in out and out[key] != value:
                raise ResticError(f"{repo.describe()}: both repositories need different {key} values; restic "
                                  "takes one per process (use the same S3 credentials, or password files)")
            out[key] = value
    return out


def run_restic(target: Target, repo: Repo, args: list[str], *, json: bool = True, write: bool = False,
               what: str | None = None, timeout: float | None = None, secrets: dict[str, str] | None = None,
               command: str | None = None, unlock_stale: bool = True) -> CmdResult:
    """Run restic on the host; raise the mapped error on failure. A stale lock is removed (restic
    unlock, stale locks only) and the command retried once; a live lock is raised as RepoLockedError."""
    cmd = command or make_restic_command(repo, args, json=json)
    env = make_secrets((repo, "")) if secrets is None else secrets
    label = what or (args[0] if args else "command")

    check_reachable(target, repo)

    def once() -> CmdResult:
        res = target.run(cmd, write=write, secrets=env, timeout=timeout, requires=repo.tool)
        if res.dry or res.ok:
            return res
        raise classify_failure(repo, target.name, res, label)

    return with_stale_lock_retry(target, repo, once) if unlock_stale else once()


def check_lock_holder(target: Target, err: RepoLockedError) -> bool:
    """True if the lock's holder is gone: old enough for restic to call it stale, or its PID is dead
    on the host that took it (the host restic runs on, compared by `uname -n`)."""
    if err.age_s is not None and err.age_s > STALE_LOCK_AGE_S:
        return True
    if err.pid is None or err.lock_host is None:
        return False
    res = target.run(f"[ \"$(uname -n)\" = {quote(err.lock_host)} ] || exit 3; [ -d /proc/{int(err.pid)} ] && exit 4; exit 0")
    return res.exited == 0


def run_unlock_after_interrupt(target: Target, repo: Repo) -> None:
    """restic stopped by a signal may leave its lock (0.14 with an upload in flight, seen with
    ``--limit-upload``: "cleaning up", exit, lock still there). Its process is gone, so the lock is
    stale: ``restic unlock`` (stale locks only: another live process's lock stays) as cleanup that
    the signal does not stop. Best effort: an error is reported, not raised over the interrupt."""
    with interrupts.shielded():
        try:
            unlock(target, repo)
        except RagopsError as exc:
            output.warn(target.name, f"{repo.describe()}: could not remove restic's lock after the interrupt: {exc}")


def unlock(target: Target, repo: Repo) -> CmdResult:
    """`restic unlock`: removes stale locks only (never --remove-all). A write."""
    return run_restic(target, repo, ["unlock"], json=False, write=True, unlock_stale=False)


def with_stale_lock_retry(target: Target, repo: Repo, fn: Callable[[], T]) -> T:
    """Call fn; on a lock whose holder is gone run `restic unlock` and call fn once more. If a signal
    stops fn's restic, its lock is removed too (``run_unlock_after_interrupt``)."""
    def call() -> T:
        try:
            return fn()
        except Interrupted:
            run_unlock_after_interrupt(target, repo)
            raise

    try:
        return call()
    except RepoLockedError as err:
        if not check_lock_holder(target, err):
            raise RepoLockedError(f"{err}: held by a live process; not broken (wait for it, or stop it)",
                                  pid=err.pid, lock_host=err.lock_host, age_s=err.age_s) from None
        output.warn(target.name, f"{repo.describe()}: removing a stale lock ({err}) and retrying once")
        unlock(target, repo)
        err.stale = True
        return call()


def parse_json_lines(stdout: str) -> list[dict[str, Any]]:
    """restic --json message streams: one JSON object per line; other lines ignored."""
    import json as jsonlib

    out = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(jsonlib.loads(line))
            except ValueError:
                continue
    return out
