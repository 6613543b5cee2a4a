"""Restore tests and restores: prove a snapshot is good by restoring it into a scratch dir, starting
Redis on it, opening Chroma on it and comparing everything with the snapshot's manifest.

- ``plan``: pure planning (scratch layout, safety against live paths, snapshot paths, redis commands).
- ``compare``: pure comparisons of what was restored with the manifest (checks with evidence).
- ``verify``: the checks, executed on the host through the seam.
- ``run``: the restore-test step (phases restore, start, verify = the measured RTO) and `restore`.
- ``record``: where verified-state is kept (a JSON file on the host) for `backup.snapshots`.
"""
