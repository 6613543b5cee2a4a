"""Restore drills (`invoke restore-test --drill`, issue 14): the restored snapshot served by a throwaway
Compose project of the live images, its answers compared with the live API's (docs/drill.md).

- ``plan``: pure planners: the drill's project name, volumes and Compose document from the live
  project's ``docker compose config``, its image ids and free ports.
- ``compare``: pure comparison of drill and live answers (match, damage, drift) and the RTO.
- ``engine``: thin executors of the docker commands (through ``Target.run``: --dry, SSH), and
  `invoke drill.down` (removing drills kept with --keep).
- ``run``: the drill as restore-test runs it (one call from ``ragops/restore/run.py``), metrics.
"""
