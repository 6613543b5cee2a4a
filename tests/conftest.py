"""The one place test fixtures are registered. Helpers and fixtures live in the package
``tests.fixtures`` (import helpers as ``from tests.fixtures.services import free_port``); the
repository root is on sys.path through ``pythonpath`` in pyproject's [tool.pytest.ini_options].

- tests/fixtures/service_fixtures.py  sshd, redis_factory/redis_server, s3_server, free_port,
                                      loop_fs, rag_stack
- tests/fixtures/restic_fixtures.py   restic_bin (0.14 / 0.18), repo_settings (repo kinds), targets
- tests/fixtures/backup_fixtures.py   chroma_dataset, copy_chroma, redis_100k, backup_env

Per-directory conftests hold only fixtures of that directory (docker engines, the Compose stack,
the Kubernetes cluster, the restore tests' world).
"""

pytest_plugins = [
    "tests.fixtures.service_fixtures",
    "tests.fixtures.restic_fixtures",
    "tests.fixtures.backup_fixtures",
]
