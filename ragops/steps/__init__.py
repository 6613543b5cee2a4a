"""Maintenance steps. Each is a function ``run_<name>(target) -> StepResult``, imported lazily
so that ``invoke --list`` never pays for a heavy dependency of a step it does not run."""

from __future__ import annotations

import importlib

from ..report import Step

# step name -> "module:function"; later capabilities (docker, backup) register here too.
STEP_FUNCTIONS = {
    "cleanup": "ragops.steps.cleanup:run_cleanup",
    "logrotate": "ragops.steps.logrotate:run_logrotate",
    "health": "ragops.steps.health:run_health",
    "docker": "ragops.docker.prune:run_docker_step",
    "backup": "ragops.backup.step:run_backup_step",
}


def make_step(name: str) -> Step:
    module_name, _, func = STEP_FUNCTIONS[name].partition(":")

    def run(target):  # noqa: ANN001, ANN202
        return getattr(importlib.import_module(module_name), func)(target)

    return Step(name=name, run=run)
