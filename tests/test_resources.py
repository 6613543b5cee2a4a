"""The resource guard (ragops/resources.py) on real processes: the prlimit memory cap stops a real
allocation past it and lets one under it through, the nice value is the one in /proc/<pid>/stat of a
real child, the I/O class is the one ``ionice -p`` reports, missing tools degrade with one warning.

systemd-run cannot run here (PID 1 is not systemd, no /run/systemd/system): only the command it
builds is tested, and ``auto`` must pick prlimit on this machine.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from ragops import resources
from ragops.backup.sources.hooks import HostScripts
from ragops.config import Host, HostEntry, HostSettings
from ragops.resources import Guard, HostTools, ResourceSettings, make_guard, parse_size
from ragops.seam import Target

MiB = 1 << 20
ALL = HostTools(found=frozenset(resources.TOOLS), systemd=True, cgroup2=True, root=True)
ALLOC = "{python} -c 'b = bytearray({n} * 1024 * 1024); b[-1] = 1; print(\"allocated\")'"
CHILD = ("import os, subprocess\n"
         "stat = open('/proc/self/stat').read().rsplit(')', 1)[1].split()\n"
         "print('nice', stat[16])\n"  # field 19 of /proc/<pid>/stat (counted from 1: pid, comm, state, ...)
         "print('ionice', subprocess.run(['ionice', '-p', str(os.getpid())], capture_output=True, text=True).stdout.strip())\n"
         "print('data', [l.split()[3] for l in open('/proc/self/limits') if l.startswith('Max data size')][0])\n")


def make_target(dry: bool = False, **resources_settings: Any) -> Target:
    settings = HostSettings.model_validate({"resources": resources_settings})
    return Target(host=Host(name="local", entry=HostEntry(), settings=settings, source="test"), dry=dry)


def run_child(target: Target) -> dict[str, str]:
    """CHILD through HostScripts (every helper script's own path): what the kernel says about it."""
    res = target.run(HostScripts(target).command(["x"]), stdin=CHILD, check=True)
    return dict(line.split(" ", 1) for line in res.stdout.strip().splitlines())


# -- real processes --------------------------------------------------------------------------------

def test_the_prlimit_cap_stops_an_allocation_past_it_and_lets_one_under_it_through():
    target = make_target(memory_max="128M")
    python = target.python
    over = target.run(resources.wrap_capped(target, ALLOC.format(python=python, n=200)))
    assert over.exited != 0 and "MemoryError" in over.stderr, (over.exited, over.stdout, over.stderr)
    under = target.run(resources.wrap_capped(target, ALLOC.format(python=python, n=40)))
    assert under.ok and "allocated" in under.stdout, under.stderr
    assert "prlimit --data=134217728 --" in resources.wrap_capped(target, "true")


def test_without_a_cap_the_same_allocation_succeeds():
    target = make_target(memory_max=None)
    res = target.run(resources.wrap_capped(target, ALLOC.format(python=target.python, n=200)))
    assert res.ok and "allocated" in res.stdout, res.stderr
    assert "prlimit" not in resources.wrap_capped(target, "true")


def test_a_helper_script_runs_with_the_nice_value_ionice_class_and_data_limit_of_the_settings():
    got = run_child(make_target(nice=13, ionice="best-effort", memory_max="1G"))
    assert got["nice"] == "13", got
    assert got["ionice"] == "best-effort: prio 7", got
    assert got["data"] == str(1 << 30), got


def test_idle_and_none_reach_the_process():
    idle = run_child(make_target(nice=0, ionice="idle", memory_max=None))
    assert idle["ionice"] == "idle" and idle["nice"] == "0" and idle["data"] == "unlimited", idle
    plain = run_child(make_target(nice=0, ionice="none", memory_max=None))
    assert plain["ionice"] != "idle" and "prio 7" not in plain["ionice"], plain
    assert resources.wrap_capped(make_target(nice=0, ionice="none", memory_max=None), "true") == "true"


def test_a_compound_command_runs_whole_under_sh_c():
    target = make_target(nice=7)
    cmd = resources.wrap_nice(target, "echo a && cut -d' ' -f19 /proc/self/stat")
    assert " sh -c " in cmd
    res = target.run(cmd, check=True)
    assert res.stdout.split() == ["a", "7"], res.stdout


def test_secrets_and_env_still_reach_a_wrapped_helper():
    target = make_target()
    cmd = HostScripts(target).command(["a"], env={"RAGOPS_T": "v"})
    assert cmd.startswith("RAGOPS_T=v nice -n 10 ionice -t -c2 -n7 prlimit --data=2147483648 -- "), cmd
    res = target.run(cmd, stdin="import os, sys; print(os.environ['RAGOPS_T'], os.environ['S'], sys.argv[1:])",
                     secrets={"S": "s3cret"}, check=True)
    assert res.stdout.strip() == "v **** ['a']"


def test_a_missing_program_under_the_wrapper_is_still_exit_127():
    target = make_target()
    res = target.run(resources.wrap_capped(target, "/nonexistent/restic version"))
    assert res.exited == 127


def test_dry_run_prints_the_wrapped_command(capsys):
    target = make_target(dry=True, nice=5)
    target.run(resources.wrap_capped(target, "restic -r /r restore latest"), write=True)
    assert "(dry run) nice -n 5 ionice -t -c2 -n7 prlimit --data=2147483648 -- restic -r /r restore latest" \
        in capsys.readouterr().err


# -- choosing, degrading ---------------------------------------------------------------------------

def test_auto_picks_prlimit_on_this_machine_where_systemd_does_not_run():
    assert not os.path.isdir("/run/systemd/system"), "this test assumes a machine without systemd"
    guard = resources.run_host_guard(make_target())
    assert guard.method == "prlimit" and guard.warnings == (), guard


def test_systemd_run_requested_without_systemd_falls_back_to_prlimit_with_one_warning(capsys):
    target = make_target(cap_with="systemd-run")
    threads = [threading.Thread(target=resources.wrap_capped, args=(target, "true")) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert resources.wrap_capped(target, "true").startswith("nice -n 10 ionice -t -c2 -n7 prlimit --data=")
    err = capsys.readouterr().err
    assert err.count("resource guard degraded") == 1, err
    assert "systemd does not run the host" in err and "capping with prlimit instead" in err


def test_missing_ionice_and_prlimit_degrade_with_warnings_not_failures():
    guard = make_guard(ResourceSettings(), HostTools(found=frozenset({"nice"})))
    assert guard.priority == ("nice", "-n", "10") and guard.cap == () and guard.method == "none"
    assert len(guard.warnings) == 2
    assert "ionice not found" in guard.warnings[0] and "resources.ionice: none" in guard.warnings[0]
    assert "prlimit not found" in guard.warnings[1] and "resources.cap_with: none" in guard.warnings[1]
    assert resources.make_capped_command("restic check", guard) == "nice -n 10 restic check"


def test_a_host_with_nothing_degrades_to_the_bare_command():
    guard = make_guard(ResourceSettings(), HostTools(found=frozenset()))
    assert resources.make_capped_command("restic check", guard) == "restic check"
    assert len(guard.warnings) == 3


def test_the_systemd_run_command_where_systemd_runs():
    guard = make_guard(ResourceSettings(memory_max="512M", nice=0, ionice="none"), ALL)
    assert guard.method == "systemd-run"
    assert resources.make_capped_command("python3 - verify", guard) == \
        "systemd-run --scope --quiet --collect -p MemoryMax=536870912 -- python3 - verify"
    both = make_guard(ResourceSettings(), ALL)
    assert resources.make_capped_command("redis-server --port 0 --save ''", both) == (
        "nice -n 10 ionice -t -c2 -n7 systemd-run --scope --quiet --collect -p MemoryMax=2147483648 -- "
        "redis-server --port 0 --save ''")
    assert resources.make_nice_command("restic check", both) == "nice -n 10 ionice -t -c2 -n7 restic check"


@pytest.mark.parametrize("tools", [
    HostTools(found=ALL.found, systemd=True, cgroup2=True, root=False),  # polkit would ask
    HostTools(found=ALL.found, systemd=True, cgroup2=False, root=True),  # cgroup v1: MemoryMax= not enforced
    HostTools(found=ALL.found - {"systemd-run"}, systemd=True, cgroup2=True, root=True),
    HostTools(found=ALL.found, systemd=False, cgroup2=True, root=True),
])
def test_auto_uses_prlimit_unless_systemd_run_can_really_cap(tools):
    guard = make_guard(ResourceSettings(), tools)
    assert guard.method == "prlimit" and guard.warnings == ()


def test_prlimit_never_asks_for_more_than_the_hosts_hard_limit():
    tools = HostTools(found=ALL.found, data_hard=1 << 30)
    assert make_guard(ResourceSettings(memory_max="2G"), tools).cap == ("prlimit", f"--data={1 << 30}", "--")
    assert make_guard(ResourceSettings(memory_max="512M"), tools).cap == ("prlimit", f"--data={512 * MiB}", "--")


def test_the_probe_reads_this_host():
    target = make_target()
    tools = resources.parse_probe(target.run(resources.make_probe_command(), check=True).stdout)
    assert {"nice", "ionice", "prlimit"} <= tools.found
    assert tools.systemd is os.path.isdir("/run/systemd/system")
    assert tools.root is (os.getuid() == 0)


def test_nothing_to_guard_needs_no_probe():
    target = make_target(nice=0, ionice="none", memory_max=None)
    assert resources.run_host_guard(target) == Guard()
    assert target.facts == {}


# -- settings --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [("2G", 2 << 30), ("512M", 512 * MiB), ("512MiB", 512 * MiB), ("1.5g", 3 << 29),
                                         ("65536K", 64 * MiB), ("1073741824", 1 << 30), ("1T", 1 << 40)])
def test_sizes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text, words", [("lots", "is not a size"), ("2 GB RAM", "is not a size"), ("-1G", "is not a size"),
                                         ("2", "under 32M"), ("", "is not a size")])
def test_bad_sizes_say_how_to_write_one(text, words):
    with pytest.raises(ValueError, match=words):
        parse_size(text)


def test_the_host_setting_rejects_a_bad_size_unknown_fields_and_bad_values():
    from pydantic import ValidationError

    assert HostSettings().resources == ResourceSettings(nice=10, ionice="best-effort", memory_max="2G", cap_with="auto")
    for bad in ({"memory_max": "2X"}, {"nice": 20}, {"ionice": "realtime"}, {"cap_with": "cgroup"}, {"memroy_max": "1G"}):
        with pytest.raises(ValidationError):
            HostSettings.model_validate({"resources": bad})


@pytest.mark.parametrize("command, simple", [
    ("restic -r '/a b' backup", True), ("'/usr/bin/python3' - inspect /x", True), ("redis-server --save ''", True),
    ("a && b", False), ("a; b", False), ("a | b", False), ("echo $HOME", False), ("X=1 prog", False), ("cd /x", False),
    ("prog > out", False), ("'unclosed", False)])
def test_which_commands_can_be_prefixed(command, simple):
    assert resources.is_simple_command(command) is simple
