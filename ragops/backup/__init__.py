"""Backups: policies (backup-policies/*.yaml), the restic repository layer, sources and the backup step.

- ``policy``: the policy schema and loading (all errors at once, each naming file and field).
- ``restic`` (+ ``repository``, ``s3``): every restic call, run on the host that holds the data
  through the seam; secrets only via ``--password-file``/``--password-command`` or the environment.
- ``errors``: the repository errors (missing, wrong password, locked) as ``RagopsError`` subclasses.
"""
