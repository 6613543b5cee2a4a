"""The seam: local and SSH targets run the same commands; --dry, secrets, atomic writes, SSH errors."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from ragops.errors import StepError, UnreachableError
from ragops.seam import make_secret_prefix, pid_alive, run_local, spawn_background, stop_pid
from tests.fixtures.fleet_helpers import make_host_entry, make_target

SECRET = "s3cr3t-Pa55"
SHOW_ARGV_AND_SECRET = "tr '\\0\\n' '  ' < /proc/$$/cmdline; echo; printf %s \"$TOKEN\" | sha256sum; echo $TOKEN >&2; exit 3"


def remote_target(tmp_path, sshd, address="127.0.0.2", dry=False, **entry):
    return make_target(tmp_path, {}, host="h", dry=dry, hosts={"h": make_host_entry(sshd, address, **entry)})


def test_reads_run_under_dry_and_writes_are_only_printed(tmp_path, capsys):
    target = make_target(tmp_path, {}, dry=True)
    assert target.run("echo read").stdout == "read\n"
    marker = tmp_path / "written"
    res = target.run(f"touch {marker}", write=True)
    assert res.dry and not marker.exists()
    assert f"(dry run) touch {marker}" in capsys.readouterr().err


def check_secret_handling(target):
    import hashlib

    res = target.run(SHOW_ARGV_AND_SECRET, secrets={"TOKEN": SECRET})
    argv, digest = res.stdout.splitlines()[:2]
    assert SECRET not in argv
    assert digest.split()[0] == hashlib.sha256(SECRET.encode()).hexdigest()
    assert res.stderr.strip() == "****"  # echoed secret is masked in what ragops keeps
    with pytest.raises(StepError) as info:
        target.run(SHOW_ARGV_AND_SECRET, secrets={"TOKEN": SECRET}, check=True)
    assert SECRET not in str(info.value) and "exit 3" in str(info.value)


def test_secrets_reach_the_command_on_stdin_never_argv_or_output_locally(tmp_path):
    check_secret_handling(make_target(tmp_path, {}))


@pytest.mark.slow
def test_secrets_reach_the_command_on_stdin_never_argv_or_output_over_ssh(tmp_path, sshd):
    target = remote_target(tmp_path, sshd)
    try:
        check_secret_handling(target)
    finally:
        target.close()


def test_secret_variable_names_must_be_identifiers():
    assert make_secret_prefix(["A_B"]) == "IFS= read -r A_B && export A_B && "
    with pytest.raises(ValueError):
        make_secret_prefix(["A;rm -rf /"])


def test_put_text_writes_atomically_with_mode_and_read_text_reads_back(tmp_path):
    target = make_target(tmp_path, {})
    path = str(tmp_path / "etc" / "policy")
    assert target.read_text(path) is None
    target.put_text("a\nb\n", path, mode="0600")
    assert target.read_text(path) == "a\nb\n"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert os.listdir(tmp_path / "etc") == ["policy"]  # no temp file left


def test_put_text_under_dry_writes_nothing(tmp_path, capsys):
    target = make_target(tmp_path, {}, dry=True)
    target.put_text("x", str(tmp_path / "f"))
    assert not (tmp_path / "f").exists()
    assert "(dry run) write" in capsys.readouterr().err


def test_a_command_that_times_out_is_a_step_error(tmp_path):
    with pytest.raises(StepError, match="timed out after 0.5s"):
        make_target(tmp_path, {}).run("sleep 5", timeout=0.5)


def test_stdin_is_always_closed_so_commands_never_hang(tmp_path):
    assert make_target(tmp_path, {}).run("cat; echo done", timeout=10).stdout == "done\n"


@pytest.mark.slow
def test_a_remote_target_runs_the_same_command_over_ssh(tmp_path, sshd):
    target = remote_target(tmp_path, sshd, "127.0.0.3")
    try:
        target.open()
        res = target.run("echo $SSH_CONNECTION; cat", stdin="from-stdin")
        assert res.stdout.split()[2] == "127.0.0.3" and res.stdout.endswith("from-stdin")
    finally:
        target.close()


@pytest.mark.slow
def test_ssh_failures_are_one_clear_unreachable_message(tmp_path, sshd):
    wrong_keys = tmp_path / "known_hosts"
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong_keys.write_text(f"[127.0.0.4]:{sshd.port} {' '.join(open(f'{other}.pub').read().split()[:2])}\n")
    cases = {
        "connection refused by root@127.0.0.9": {"address": "127.0.0.9"},
        "host key mismatch for root@127.0.0.4": {"address": "127.0.0.4", "known_hosts": str(wrong_keys)},
        "is unknown (not in known_hosts)": {"address": "127.0.0.4", "known_hosts": str(tmp_path / "empty")},
        "authentication failed for root@127.0.0.5": {"address": "127.0.0.5", "key_file": str(other)},
    }
    for expected, entry in cases.items():
        target = remote_target(tmp_path / expected[:8].replace(" ", "_"), sshd, **entry)
        with pytest.raises(UnreachableError) as info:
            target.open()
        assert expected in str(info.value) and str(info.value).startswith("h: ")


@pytest.mark.slow
def test_host_key_checking_can_be_turned_off_explicitly(tmp_path, sshd):
    target = remote_target(tmp_path, sshd, "127.0.0.6", known_hosts=str(tmp_path / "empty"),
                           strict_host_key_checking=False)
    try:
        assert target.run("echo ok").stdout == "ok\n"
    finally:
        target.close()


def test_controller_processes_run_spawn_and_stop_by_pid(tmp_path):
    assert run_local(["sh", "-c", "echo out; echo err >&2; exit 4"]).__dict__ == \
        {"command": "sh -c 'echo out; echo err >&2; exit 4'", "stdout": "out\n", "stderr": "err\n", "exited": 4, "dry": False}
    assert run_local(["/nonexistent/tool"]).exited == 127
    assert run_local(["sleep", "5"], timeout=0.2).exited == 124
    pid = spawn_background(["sleep", "60"], log_path=str(tmp_path / "log"))
    assert pid_alive(pid)
    assert stop_pid(pid, grace_s=2)
    assert not pid_alive(pid)
    assert stop_pid(pid) is False


def check_large_output_is_read_in_linear_time(target):
    t0 = time.monotonic()
    res = target.run("head -c 8000000 /dev/zero | tr '\\0' x")
    assert len(res.stdout) == 8_000_000
    assert time.monotonic() - t0 < 5  # Invoke's own reader re-joins everything per 1000 B: minutes


def test_large_output_is_read_in_linear_time_locally(tmp_path):
    check_large_output_is_read_in_linear_time(make_target(tmp_path, {}))


@pytest.mark.slow
def test_large_output_is_read_in_linear_time_over_ssh(tmp_path, sshd):
    target = remote_target(tmp_path, sshd, "127.0.0.7")
    try:
        check_large_output_is_read_in_linear_time(target)
    finally:
        target.close()
