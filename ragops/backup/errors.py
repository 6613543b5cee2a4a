"""Repository errors, each one clear sentence naming the repository and what to do."""

from __future__ import annotations

from ..errors import ExitCode, RagopsError, StepError, ToolNotFoundError


class ResticError(StepError):
    """A restic command failed for a reason without a more specific class."""


class ResticNotFoundError(ResticError, ToolNotFoundError):
    """The restic binary is missing on the host."""


class RepoMissingError(ResticError):
    """No repository at the URL (not initialized yet, or a wrong URL)."""


class WrongPasswordError(ResticError):
    """The repository exists but the password opens none of its keys."""


class RepoUnreachableError(ResticError):
    """The repository's backend (S3 endpoint, SFTP server) cannot be reached."""


class RepoLockedError(ResticError):
    """Another restic process holds a lock; ``stale`` when its holder is known to be gone."""

    def __init__(self, message: str, *, pid: int | None = None, lock_host: str | None = None,
                 age_s: float | None = None, stale: bool = False) -> None:
        super().__init__(message)
        self.pid = pid
        self.lock_host = lock_host
        self.age_s = age_s
        self.stale = stale


class RepoDamagedError(RagopsError):
    """`restic check` found errors in the repository."""

    exit_code = ExitCode.VERIFY_FAILED
