"""Resource guard: heavy commands run under ``nice``, ``ionice`` and a memory cap (host setting ``resources``).

What is wrapped (see docs/resources.md):

- every ``ragops/remote`` helper script (``HostScripts.command``): nice + ionice + the memory cap.
  The cap is per process, so the light stdlib helpers (hashing, probes, guards: < 30 MiB) never
  come near it; the Chroma inspect/verify helpers (and the throwaway redis-server, where it is
  started) are why it exists;
- restic ``backup``, ``restore`` and ``check``: nice + ionice only (restic's own memory is the
  repository index: capping it would only make a backup fail).

The memory cap is ``systemd-run --scope -p MemoryMax=`` (a cgroup: counts RSS and page cache) when
systemd manages the host, else ``prlimit --data=`` (RLIMIT_DATA). RLIMIT_DATA, not RLIMIT_AS, on
purpose (measured here, ChromaDB 1.5.9, docs/resources.md): a ChromaDB verify process has ~800 MiB
of address space for 160 MiB of RSS (the Rust bindings, onnxruntime and every thread's stack and
malloc arena are mapped up front), so ``--as=256M`` already fails the ``import chromadb`` ("failed
to map segment from shared object") and any AS cap must be set far above the memory really used.
RLIMIT_DATA (Linux >= 4.7) counts private writable mappings only, i.e. the heap and anonymous
``mmap``s the index and Python objects live in: the same import needs ~150 MiB of it, and it grows
with the index (2 x 20k-160k vectors measured). Past the cap an allocation fails (Python
``MemoryError``, a Rust abort, a failed thread start): the helper fails, the host does not swap or
OOM-kill its neighbours.

Pure ``make_*`` functions build the wrapped commands; ``run_host_guard`` learns once per run (a
``Target.fact``) which tools the host has. A missing ``ionice``/``prlimit``/``systemd-run`` degrades
with one warning per host and run, it never fails a command.
"""

from __future__ import annotations

import re
import shlex
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import output

if TYPE_CHECKING:
    from .seam import Target

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
MIN_MEMORY = 32 * MiB  # below this not even a stdlib helper starts: surely a typo ("2" for "2G")
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": 1 << 40}
TOOLS = ("nice", "ionice", "prlimit", "systemd-run")


def parse_size(text: str) -> int:
    """``"2G"`` -> 2147483648. K/M/G/T are powers of 1024 (as systemd's MemoryMax= reads them), an
    optional ``B``/``iB`` is allowed (``512MiB``), a bare number is bytes."""
    match = _SIZE.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not a size: write a number with an optional K, M, G or T suffix "
                         "(powers of 1024), e.g. 512M or 2G")
    value = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if value < MIN_MEMORY:
        raise ValueError(f"{text!r} is {value} bytes: a memory cap under {MIN_MEMORY // MiB}M cannot run even a "
                         "helper script (did you mean 2G?)")
    return value


def format_size(n: float) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


class ResourceSettings(BaseModel):
    """How heavy commands run on the host: CPU and I/O priority, and a memory cap."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)

    nice: int = Field(10, ge=0, le=19, description="CPU niceness (`nice -n N`, 0-19) of restic backup/restore/check and of every ragops helper script on the host; 0 leaves the priority alone.")
    ionice: Literal["idle", "best-effort", "none"] = Field("best-effort", description="I/O priority of the same commands: `best-effort` is class 2 at its lowest level 7 (`ionice -c2 -n7`): behind the RAG services, never stalled; `idle` (`ionice -c3`) gets the disk only when nobody else wants it, which can starve a backup on a busy disk for hours; `none` leaves it alone. Only schedulers with priorities (BFQ, CFQ) honour it.")
    memory_max: str | None = Field("2G", description="Memory cap of each heavy helper process (the Chroma inspect/verify helpers, the restore test's throwaway redis-server), e.g. 512M or 2G (powers of 1024); restore-test refuses up front (exit 2) when the snapshot's Chroma index or Redis dump is estimated not to fit, pointing to `--on <verify host>`. null: no cap and no refusal.")
    cap_with: Literal["auto", "systemd-run", "prlimit", "none"] = Field("auto", description="How memory_max is enforced: `systemd-run` (`systemd-run --scope -p MemoryMax=`: a cgroup, counts RSS and page cache), `prlimit` (`prlimit --data=`: RLIMIT_DATA, the process' heap and anonymous mappings; RLIMIT_AS would break ChromaDB's large virtual mappings), `none` (no cap, restore-test still refuses what would not fit). `auto`: systemd-run when systemd runs the host (/run/systemd/system), systemd-run is installed, cgroup v2 is mounted and ragops runs as root there; else prlimit.")

    @field_validator("memory_max")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None:
            parse_size(value)
        return value

    @property
    def memory_max_bytes(self) -> int | None:
        return None if self.memory_max is None else parse_size(self.memory_max)


# -- what the host has -----------------------------------------------------------------------------

@dataclass(frozen=True)
class HostTools:
    """What the host offers for the guard, learned by :func:`make_probe_command`."""

    found: frozenset[str] = frozenset(TOOLS)
    systemd: bool = False  # /run/systemd/system: systemd is the service manager (PID 1)
    cgroup2: bool = False  # the unified hierarchy, where MemoryMax= is enforced
    root: bool = False  # systemd-run --scope on the system manager needs root (else polkit asks)
    data_hard: int | None = None  # the host's hard RLIMIT_DATA in bytes (None: unlimited)


def make_probe_command() -> str:
    """One shell round trip: which tools exist, systemd, cgroup v2, root, the hard RLIMIT_DATA."""
    tools = " ".join(TOOLS)
    return (f"for t in {tools}; do command -v $t >/dev/null 2>&1 && echo tool=$t; done; "
            "[ -d /run/systemd/system ] && echo systemd; [ -f /sys/fs/cgroup/cgroup.controllers ] && echo cgroup2; "
            "[ \"$(id -u)\" = 0 ] && echo root; echo data_hard=$(ulimit -H -d 2>/dev/null); true")


def parse_probe(stdout: str) -> HostTools:
    lines = [line.strip() for line in stdout.splitlines()]
    hard = next((line.split("=", 1)[1] for line in lines if line.startswith("data_hard=")), "")
    return HostTools(found=frozenset(line[5:] for line in lines if line.startswith("tool=")),
                     systemd="systemd" in lines, cgroup2="cgroup2" in lines, root="root" in lines,
                     data_hard=int(hard) * KiB if hard.isdigit() else None)  # ulimit -d is in KiB


# -- the guard: pure decisions ---------------------------------------------------------------------

@dataclass(frozen=True)
class Guard:
    """What goes in front of a command on one host: the priority argv, the cap argv, and why
    something is missing (one warning)."""

    priority: tuple[str, ...] = ()
    cap: tuple[str, ...] = ()
    method: str = "none"  # systemd-run | prlimit | none
    memory_max: int | None = None
    warnings: tuple[str, ...] = ()


def make_priority_argv(settings: ResourceSettings, tools: HostTools) -> tuple[list[str], list[str]]:
    """(``nice -n N ionice -t -c2 -n7`` as argv, warnings). ``-t``: if the kernel or a seccomp
    profile refuses the I/O priority, ionice still runs the command."""
    argv: list[str] = []
    warnings: list[str] = []
    if settings.nice:
        if "nice" in tools.found:
            argv += ["nice", "-n", str(settings.nice)]
        else:
            warnings.append("nice not found: commands run at normal CPU priority (install coreutils, or set "
                            "resources.nice: 0)")
    if settings.ionice != "none":
        if "ionice" in tools.found:
            argv += ["ionice", "-t", "-c3"] if settings.ionice == "idle" else ["ionice", "-t", "-c2", "-n7"]
        else:
            warnings.append("ionice not found: commands run at normal I/O priority (install util-linux, or set "
                            "resources.ionice: none)")
    return argv, warnings


def choose_cap(settings: ResourceSettings, tools: HostTools) -> tuple[str, list[str]]:
    """(``systemd-run`` | ``prlimit`` | ``none``, warnings) for this host."""
    if settings.memory_max is None or settings.cap_with == "none":
        return "none", []
    systemd_ok = tools.systemd and "systemd-run" in tools.found
    if settings.cap_with == "auto":
        if systemd_ok and tools.cgroup2 and tools.root:
            return "systemd-run", []
    elif settings.cap_with == "systemd-run":
        if systemd_ok:
            return "systemd-run", []
        why = "systemd does not run the host (no /run/systemd/system)" if not tools.systemd else "systemd-run is not installed"
        if "prlimit" in tools.found:
            return "prlimit", [f"resources.cap_with is systemd-run but {why}: capping with prlimit instead"]
        return "none", [f"resources.cap_with is systemd-run but {why}, and prlimit is missing too: heavy helpers run "
                        "WITHOUT the resources.memory_max cap"]
    if "prlimit" in tools.found:
        return "prlimit", []
    return "none", ["prlimit not found: heavy helpers run WITHOUT the resources.memory_max cap (install util-linux, "
                    "or set resources.cap_with: none)"]


def make_cap_argv(method: str, memory_max: int) -> list[str]:
    """The cap in front of a command: ``prlimit --data=BYTES --`` or
    ``systemd-run --scope --quiet --collect -p MemoryMax=BYTES --``. A scope keeps the command in
    ragops' process group (it is the same process, moved into a new cgroup), so cancelling still
    reaches it; a daemon it forks (redis-server --daemonize) stays in the scope, under the cap."""
    if method == "prlimit":
        return ["prlimit", f"--data={int(memory_max)}", "--"]
    if method == "systemd-run":
        return ["systemd-run", "--scope", "--quiet", "--collect", "-p", f"MemoryMax={int(memory_max)}", "--"]
    return []


def make_guard(settings: ResourceSettings, tools: HostTools) -> Guard:
    priority, warnings = make_priority_argv(settings, tools)
    method, more = choose_cap(settings, tools)
    limit = settings.memory_max_bytes
    if method == "prlimit" and limit is not None and tools.data_hard is not None and tools.data_hard < limit:
        limit = tools.data_hard  # prlimit cannot raise the hard limit: the host's own is lower already
    cap = make_cap_argv(method, limit) if limit is not None else []
    return Guard(priority=tuple(priority), cap=tuple(cap), method=method if cap else "none",
                 memory_max=limit if cap else None, warnings=tuple(warnings + more))


_SHELL_WORDS = {"!", "{", "}", "[", "[[", ".", ":", "case", "cd", "do", "done", "elif", "else", "esac", "eval",
                "exec", "exit", "export", "fi", "for", "if", "read", "set", "source", "then", "trap", "ulimit",
                "umask", "unset", "until", "wait", "while"}


def is_simple_command(command: str) -> bool:
    """One program with arguments (quoted or not): no operator, expansion, assignment or shell
    word; only such a command can be prefixed (``nice ... CMD``), anything else runs as ``sh -c``."""
    if any(ch in command for ch in "$`\n\\") or not command.strip():
        return False
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError:
        return False
    if not tokens or any(t and all(ch in "();<>|&" for ch in t) for t in tokens):
        return False
    first = tokens[0]
    return first not in _SHELL_WORDS and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", first)


def make_wrapped_command(command: str, prefix: list[str] | tuple[str, ...]) -> str:
    """``PREFIX... CMD`` for a simple command (no extra process: nice, ionice, prlimit and a scope
    all exec the next), else ``PREFIX... sh -c 'CMD'``."""
    if not prefix:
        return command
    head = " ".join(shlex.quote(a) for a in prefix)
    return f"{head} {command}" if is_simple_command(command) else f"{head} sh -c {shlex.quote(command)}"


def make_nice_command(command: str, guard: Guard) -> str:
    """CPU and I/O priority only (restic backup/restore/check)."""
    return make_wrapped_command(command, guard.priority)


def make_capped_command(command: str, guard: Guard) -> str:
    """Priority and the memory cap (the heavy helpers)."""
    return make_wrapped_command(command, guard.priority + guard.cap)


# -- per host and run ------------------------------------------------------------------------------

_LOCKS_GUARD = threading.Lock()
FACT = "resource guard"


def run_host_guard(target: Target) -> Guard:
    """The host's :class:`Guard`, learned once per run (a ``Target.fact``: one probe, one warning)."""
    settings: ResourceSettings = target.settings.resources
    if not settings.nice and settings.ionice == "none" and (settings.memory_max is None or settings.cap_with == "none"):
        return Guard()
    with _LOCKS_GUARD:
        lock = target.facts.setdefault((FACT, "lock"), threading.Lock())
    with lock:  # the verify phase runs helpers in parallel: probe (and warn) once

        def compute() -> Guard:
            res = target.run(make_probe_command())
            guard = make_guard(settings, parse_probe(res.stdout) if res.ok else HostTools(found=frozenset()))
            if guard.warnings:
                output.warn(target.name, "resource guard degraded: " + "; ".join(guard.warnings))
            return guard

        guard: Guard = target.fact(FACT, compute)
    return guard


def wrap_nice(target: Target, command: str) -> str:
    """``command`` under the host's nice/ionice (``resources.nice``, ``resources.ionice``)."""
    return make_nice_command(command, run_host_guard(target))


def wrap_capped(target: Target, command: str) -> str:
    """``command`` under nice/ionice and the host's memory cap (``resources.memory_max``)."""
    return make_capped_command(command, run_host_guard(target))
