"""One error hierarchy and one table of exit codes for every task."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of every ragops task (also documented in the README)."""

    OK = 0
    STEP_FAILED = 1  # a step (cleanup, health, backup, ...) failed or a check was not healthy
    CONFIG_ERROR = 2  # bad ragops.yaml / policy / flag: nothing was run
    LOCK_HELD = 3  # another ragops run holds the host's lock
    UNREACHABLE = 4  # SSH connection failed (refused, auth, host key, dropped)
    VERIFY_FAILED = 5  # a restore test or repository check found damage
    INTERRUPTED = 130  # SIGTERM, SIGINT or SIGHUP: the run stopped early (writer resumed, scratch removed)


class RagopsError(Exception):
    """Base of every error ragops raises on purpose: message is shown as-is, no traceback."""

    exit_code: ExitCode = ExitCode.STEP_FAILED

    def __init__(self, message: str, *, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(RagopsError):
    """Invalid configuration or input; carries every problem found, each naming file and field."""

    exit_code = ExitCode.CONFIG_ERROR

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class LockHeldError(RagopsError):
    exit_code = ExitCode.LOCK_HELD


class UnreachableError(RagopsError):
    exit_code = ExitCode.UNREACHABLE


class StepError(RagopsError):
    exit_code = ExitCode.STEP_FAILED


class ToolNotFoundError(StepError):
    """A program a command needs is missing on the host (the shell's exit 127), raised by the seam
    for ``target.run(cmd, requires=Tool(...))``; ``reason`` is the message without the host."""

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class VerifyError(RagopsError):
    exit_code = ExitCode.VERIFY_FAILED


class SafetyError(RagopsError):
    """A requested action would touch something outside what was configured; refused."""

    exit_code = ExitCode.CONFIG_ERROR


class Interrupted(RagopsError):
    """ragops received SIGTERM, SIGINT or SIGHUP: the running command was stopped, cleanup ran."""

    exit_code = ExitCode.INTERRUPTED


class SpaceError(StepError):
    """A write would drop a filesystem below its free-space floor: refused before writing anything."""
