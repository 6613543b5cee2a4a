"""The Invoke entry point: composes ragops' task modules into one collection. No logic here."""

from invoke import Collection

from ragops.tasks import backup as backup_tasks
from ragops.tasks import chroma as chroma_tasks
from ragops.tasks import config_tasks, demo, maintain
from ragops.tasks import docker as docker_tasks
from ragops.tasks import drill as drill_tasks
from ragops.tasks import k8s as k8s_tasks
from ragops.tasks import release as release_tasks
from ragops.tasks import restore as restore_tasks

ns = Collection()
ns.add_task(maintain.maintain)
ns.add_task(maintain.cleanup)
ns.add_task(maintain.logrotate)
ns.add_task(maintain.health)
ns.add_task(restore_tasks.restore_test)
ns.add_task(restore_tasks.restore)
ns.add_collection(Collection.from_module(demo, name="demo"))
ns.add_collection(Collection.from_module(config_tasks, name="config"))
ns.add_collection(Collection.from_module(docker_tasks, name="docker"))
ns.add_collection(Collection.from_module(backup_tasks, name="backup"))
ns.add_collection(Collection.from_module(chroma_tasks, name="chroma"))
ns.add_collection(Collection("k8s", k8s_tasks.render, k8s_tasks.run_now, k8s_tasks.upgrade))
ns.add_collection(Collection("velero", k8s_tasks.backup, k8s_tasks.restore_test))
ns.add_task(release_tasks.upgrade)
ns.add_collection(Collection("release", release_tasks.release, release_tasks.rollback))
ns.add_collection(Collection("drill", drill_tasks.down))
