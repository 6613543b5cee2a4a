"""Docker on a host: safe pruning, log-driver audit, health-gated Compose rolling upgrades,
their history, and the release runbook. Everything goes through the docker CLI on the host
(``ragops.docker.cli``), so the same code works locally and over SSH."""
