"""Restore tests and restores: prove a snapshot is good by restoring it into a scratch dir and having
every data source check its own manifest record there (``ragops.backup.sources.registry``).

- ``plan``: pure planning (scratch layout, safety against live paths, the check plan).
- ``guard``: the restored tree and the (untrusted) manifest are checked before anything opens them.
- ``compare``: pure comparisons that belong to no source (files, the summary).
- ``verify``: the files and repository checks, executed on the host through the seam.
- ``run``: the restore-test step (phases restore, start, verify = the measured RTO).
- ``real_restore``: ``invoke restore`` (a snapshot into a target dir + the operator's bring-up steps).
- ``record``: where verified-state is kept (a JSON file on the host) for `backup.snapshots`.
"""
