"""Secrets are read on the controller from files or environment variables named in the config,
and handed to commands only through the seam's ``secrets=`` (stdin), never argv or logs."""

from __future__ import annotations

import os
from pathlib import Path

from .config import RedisSettings
from .errors import ConfigError


def read_secret(*, file: str | None, env: str | None, what: str) -> str | None:
    if file:
        try:
            value = Path(file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read password file {file}: {exc.strerror}") from None
        return value or None
    if env:
        from_env = os.environ.get(env)
        if not from_env:
            raise ConfigError(f"{what}: environment variable {env} is not set")
        return from_env
    return None


def read_redis_password(redis: RedisSettings) -> str | None:
    return read_secret(file=redis.password_file, env=redis.password_env, what="redis")
