"""Old name of :mod:`ragops.restore.real_restore` (kept for importers outside ragops.restore)."""

from .real_restore import RestoreOptions, make_restore_step, run_restore

__all__ = ["RestoreOptions", "make_restore_step", "run_restore"]
