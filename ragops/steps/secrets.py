"""Old name of :mod:`ragops.secrets` (secrets are not a step); kept for importers not yet moved."""

from ..secrets import read_redis_password, read_secret

__all__ = ["read_redis_password", "read_secret"]
