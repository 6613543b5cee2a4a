"""The Invoke entry point: composes ragops' task modules into one collection. No logic here."""

from invoke import Collection

from ragops.tasks import backup as backup_tasks
from ragops.tasks import chroma as chroma_tasks
from ragops.tasks import config_tasks, demo, maintain

ns = Collection()
ns.add_task(maintain.maintain)
ns.add_task(maintain.cleanup)
ns.add_task(maintain.logrotate)
ns.add_task(maintain.health)
ns.add_collection(Collection.from_module(demo, name="demo"))
ns.add_collection(Collection.from_module(config_tasks, name="config"))
ns.add_collection(Collection.from_module(backup_tasks, name="backup"))
ns.add_collection(Collection.from_module(chroma_tasks, name="chroma"))
