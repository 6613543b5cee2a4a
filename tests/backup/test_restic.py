"""The restic repository layer against real restic (0.14 and 0.18) and real repositories: local
directories, sftp: to the test sshd, s3: to a real SeaweedFS server."""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ragops.backup import restic as r
from ragops.backup.errors import (
    RepoLockedError,
    RepoMissingError,
    RepoUnreachableError,
    ResticError,
    WrongPasswordError,
)
from ragops.backup.policy import RepositorySettings, RetentionSettings
from ragops.backup.s3 import ensure_bucket, parse_s3_url
from ragops.errors import ConfigError

# ------------------------------------------------------------------ pure planners


def clean(result: r.CheckResult) -> bool:
    """A check that really ran and found nothing: restic's own verdict, not just "no exception"."""
    assert result.ok, result.output[-800:]
    assert "no errors were found" in result.output, result.output[-800:]
    return True


def test_the_restic_command_carries_password_flags_and_options_but_never_a_secret() -> None:
    repo = r.Repo(url="s3:http://h:9000/bucket", password_command="pass show restic", cache_dir="/var/cache/r",
                  options=(("s3.region", "eu-west-1"), ("sftp.command", "ssh -F /c h -s sftp")),
                  secrets={"RESTIC_PASSWORD": "hunter2", "AWS_SECRET_ACCESS_KEY": "topsecret"})
    cmd = r.make_restic_command(repo, ["snapshots", "--tag", "a b"], json=True)
    assert cmd == ("restic -r s3:http://h:9000/bucket --cache-dir /var/cache/r --password-command 'pass show restic' "
                   "-o s3.region=eu-west-1 -o 'sftp.command=ssh -F /c h -s sftp' --json snapshots --tag 'a b'")
    assert "hunter2" not in cmd and "topsecret" not in cmd and "hunter2" not in repr(repo)


def test_backup_refuses_relative_paths_because_restores_would_match_nothing() -> None:
    with pytest.raises(ConfigError, match="must be absolute: data/x"):
        r.make_backup_args(["/srv/a", "data/x"], tags=["ragops"])
    args = r.make_backup_args(["/srv/a"], tags=["ragops", "nightly"], host_tag="prod1", exclude=["*.tmp"])
    assert args == ["backup", "--tag", "ragops", "--tag", "nightly", "--host", "prod1", "--exclude", "*.tmp", "/srv/a"]


def test_forget_groups_by_host_and_tags_and_passes_every_rule() -> None:
    retention = RetentionSettings(keep_daily=7, keep_weekly=4, keep_within="2d", keep_tags=["keep"])
    args = r.make_forget_args(retention, tags=["ragops"], host="prod1", dry=True)
    assert args == ["forget", "-q", "--group-by", "host,tags", "--keep-daily", "7", "--keep-weekly", "4",
                    "--keep-within", "2d", "--keep-tag", "keep", "--tag", "ragops", "--host", "prod1", "--dry-run"]


def test_copy_reads_the_source_password_from_its_own_file() -> None:
    src = r.Repo(url="/a", password_file="/pa")
    dst = r.Repo(url="s3:http://h/bkt", password_file="/pb", secrets={"AWS_ACCESS_KEY_ID": "k"})
    cmd = r.make_copy_command(src, dst, ["abc123"])
    assert cmd == "restic -r s3:http://h/bkt --password-file /pb copy --from-repo /a --from-password-file /pa abc123"
    with pytest.raises(ResticError, match="need different values for s3.region"):
        r.make_copy_command(r.Repo(url="s3:http://a/bkt", password_file="/pa", options=(("s3.region", "eu"),)),
                            r.Repo(url="s3:http://b/bkt", password_file="/pb", options=(("s3.region", "us"),)), ["x"])


def test_s3_urls_split_into_endpoint_bucket_and_prefix() -> None:
    loc = parse_s3_url("s3:http://127.0.0.1:9000/bkt/some/prefix")
    assert (loc.endpoint, loc.bucket, loc.prefix) == ("http://127.0.0.1:9000", "bkt", "some/prefix")
    assert parse_s3_url("s3:s3.amazonaws.com/bkt").endpoint == "https://s3.amazonaws.com"


# ------------------------------------------------------------------ local repository, both versions


def test_version_detection_reads_the_installed_restic(make_target, restic_bin, repo_settings) -> None:
    target = make_target(restic=restic_bin)
    version = r.detect_version(target, r.make_repo(target, repo_settings("local")))
    assert version >= (0, 14, 0) and (version[:2] == (0, 14) or restic_bin != "restic")


def test_round_trip_init_backup_snapshots_restore_check(make_target, restic_bin, repo_settings, data_tree, tmp_path) -> None:
    target = make_target(restic=restic_bin)
    repo = r.make_repo(target, repo_settings("local"))
    assert r.init(target, repo) is True
    assert r.init(target, repo) is False  # idempotent: an existing repository is left alone
    first = r.backup(target, repo, [str(data_tree)], tags=["ragops"], host_tag="prod1", exclude=["*.tmp"])
    assert first.snapshot_id and first.files_new == 3 and first.data_added > 0
    second = r.backup(target, repo, [str(data_tree)], tags=["ragops"], host_tag="prod1", exclude=["*.tmp"])
    assert second.files_new == 0 and second.files_unmodified == 3
    snaps = r.snapshots(target, repo, tags=["ragops"], host="prod1")
    assert [s.short_id for s in snaps] == [first.snapshot_id[:8], second.snapshot_id[:8]]
    assert snaps[0].paths == [str(data_tree)] and snaps[0].hostname == "prod1"
    out = tmp_path / "restored"
    r.restore(target, repo, first.snapshot_id, str(out), include=[str(data_tree / "conf")])
    restored = out / str(data_tree).lstrip("/")
    assert (restored / "conf" / "app.yaml").read_text() == "model: all-MiniLM-L6-v2\n"
    assert not (restored / "conf" / "skip.tmp").exists() and not (restored / "blob.bin").exists()
    r.restore(target, repo, "latest", str(tmp_path / "full"))
    full = tmp_path / "full" / str(data_tree).lstrip("/")
    assert filecmp.cmp(full / "blob.bin", data_tree / "blob.bin", shallow=False)
    assert clean(r.check(target, repo, raise_on_damage=False))
    assert clean(r.check(target, repo, "50%", raise_on_damage=False))
    assert r.stats(target, repo, first.snapshot_id)["total_file_count"] >= 3


def test_a_missing_repository_says_to_run_backup_init(make_target, restic_bin, repo_settings) -> None:
    target = make_target(restic=restic_bin)
    repo = r.make_repo(target, repo_settings("local", "never-created"))
    with pytest.raises(RepoMissingError) as info:
        r.snapshots(target, repo)
    assert str(info.value) == (f"local: primary repository {repo.url} does not exist: "
                               "run `invoke backup.init --host local`")


def test_a_wrong_password_is_one_clear_error(make_target, restic_bin, repo_settings, tmp_path) -> None:
    target = make_target(restic=restic_bin)
    settings = repo_settings("local")
    r.init(target, r.make_repo(target, settings))
    (tmp_path / "wrong").write_text("not-the-password\n")
    wrong = r.make_repo(target, settings.model_copy(update={"password_file": str(tmp_path / "wrong")}))
    with pytest.raises(WrongPasswordError, match="wrong password"):
        r.snapshots(target, wrong)
    with pytest.raises(WrongPasswordError):
        r.init(target, wrong)  # init checks an existing repository's password, never re-creates it


def test_forget_keeps_the_right_snapshots_and_dry_changes_nothing(local_target, repo_settings, data_tree) -> None:
    repo = r.make_repo(local_target, repo_settings("local"))
    r.init(local_target, repo)
    ids = [r.backup(local_target, repo, [str(data_tree)], tags=["ragops"], host_tag="prod1").snapshot_id for _ in range(4)]
    other = r.backup(local_target, repo, [str(data_tree)], tags=["manual"], host_tag="prod1").snapshot_id
    retention = RetentionSettings(keep_last=2)
    plan = r.forget(local_target, repo, retention, tags=["ragops"], host="prod1", dry=True)
    assert sorted(s.short_id for s in plan.remove) == sorted(i[:8] for i in ids[:2])
    assert sorted(s.short_id for s in plan.keep) == sorted(i[:8] for i in ids[2:])
    assert len(r.snapshots(local_target, repo)) == 5  # the dry run removed nothing
    done = r.forget(local_target, repo, retention, tags=["ragops"], host="prod1", dry=False)
    assert not done.dry and len(done.remove) == 2
    left = {s.short_id for s in r.snapshots(local_target, repo)}
    assert left == {i[:8] for i in ids[2:]} | {other[:8]}  # other tag sets are never touched
    assert "would" not in r.prune(local_target, repo)  # a real prune, not a dry run
    assert clean(r.check(local_target, repo, raise_on_damage=False))


def test_dry_target_plans_backup_and_forget_without_writing(make_target, repo_settings, data_tree) -> None:
    settings = repo_settings("local")
    real = make_target()
    repo = r.make_repo(real, settings)
    r.init(real, repo)
    r.backup(real, repo, [str(data_tree)], tags=["ragops"])
    dry = make_target(dry=True)
    summary = r.backup(dry, repo, [str(data_tree)], tags=["ragops"])
    assert summary.dry and summary.snapshot_id is None and summary.total_files_processed == 4
    r.forget(dry, repo, RetentionSettings(keep_last=1), tags=["ragops"])
    assert r.init(dry, r.make_repo(dry, repo_settings("local", "not-yet"))) is False
    assert len(r.snapshots(real, repo)) == 1 and not Path(repo_settings("local", "not-yet").url).exists()


def test_copy_to_a_secondary_repository_and_check_presence(local_target, repo_settings, data_tree, tmp_path) -> None:
    primary = r.make_repo(local_target, repo_settings("local", "primary"))
    (tmp_path / "pw2").write_text("second-password\n")
    secondary = r.make_repo(local_target, RepositorySettings(url=str(tmp_path / "secondary"), password_file=str(tmp_path / "pw2"),
                                                             cache_dir=str(tmp_path / "cache2")), role="secondary")
    r.init(local_target, primary)
    r.init(local_target, secondary)
    snap = r.backup(local_target, primary, [str(data_tree)], tags=["ragops"]).snapshot_id
    assert snap and r.verify_present(local_target, secondary, snap) is None
    r.copy(local_target, primary, secondary, [snap])
    copied = r.verify_present(local_target, secondary, snap)
    assert copied is not None and copied.original and copied.original.startswith(snap)
    assert clean(r.check(local_target, secondary, raise_on_damage=False))


# ------------------------------------------------------------------ locks


def start_stdin_backup(repo: r.Repo) -> subprocess.Popen[bytes]:
    """A real `restic backup --stdin` that holds its repository lock until its stdin closes."""
    cmd = r.make_restic_command(repo, ["backup", "--stdin", "--stdin-filename", "held.txt"])
    proc = subprocess.Popen(["sh", "-c", cmd], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    locks = Path(repo.url) / "locks"
    while time.monotonic() < deadline and not (locks.is_dir() and any(locks.iterdir())):
        time.sleep(0.05)
    assert any(locks.iterdir()), "restic did not take its lock"
    return proc


def restic_pid(proc: subprocess.Popen[bytes]) -> int:
    """The restic process itself (sh may exec it or keep it as a child)."""
    out = subprocess.run(["pgrep", "-s", str(proc.pid), "-f", "backup --stdin"], capture_output=True, text=True).stdout.split()
    out = [pid for pid in out if Path(f"/proc/{pid}/exe").resolve().name == "restic"]
    return int(out[0]) if out else proc.pid


def test_a_killed_backup_leaves_a_stale_lock_that_the_next_operation_clears(make_target, restic_bin, repo_settings, data_tree) -> None:
    local_target = make_target(restic=restic_bin)
    repo = r.make_repo(local_target, repo_settings("local"))
    r.init(local_target, repo)
    proc = start_stdin_backup(repo)
    os.kill(restic_pid(proc), signal.SIGKILL)
    proc.stdin.close()  # type: ignore[union-attr]
    proc.wait(timeout=10)
    assert any((Path(repo.url) / "locks").iterdir())  # kill -9 left the lock behind
    assert clean(r.check(local_target, repo, raise_on_damage=False))  # needs the exclusive lock: unlock (stale only) + retry
    assert not any((Path(repo.url) / "locks").iterdir())
    assert r.backup(local_target, repo, [str(data_tree)], tags=["ragops"]).snapshot_id


def test_a_live_lock_is_reported_and_not_broken(make_target, restic_bin, repo_settings) -> None:
    local_target = make_target(restic=restic_bin)
    repo = r.make_repo(local_target, repo_settings("local"))
    r.init(local_target, repo)
    proc = start_stdin_backup(repo)
    try:
        pid = restic_pid(proc)
        with pytest.raises(RepoLockedError) as info:
            r.forget(local_target, repo, RetentionSettings(keep_last=1), tags=["ragops"], dry=False)
        assert info.value.pid == pid and not info.value.stale
        assert f"is locked by PID {pid} on {os.uname().nodename}" in str(info.value)
        assert "held by a live process; not broken" in str(info.value)
        assert any((Path(repo.url) / "locks").iterdir())
    finally:
        proc.stdin.write(b"held data\n")  # type: ignore[union-attr]
        proc.stdin.close()  # type: ignore[union-attr]  # ends the held backup normally
        proc.wait(timeout=30)
    assert proc.returncode == 0 and len(r.snapshots(local_target, repo)) == 1


# ------------------------------------------------------------------ sftp and s3


@pytest.mark.slow
def test_sftp_round_trip_with_a_copy_back_to_a_local_repository(local_target, repo_settings, data_tree, tmp_path) -> None:
    repo = r.make_repo(local_target, repo_settings("sftp", "sftp-repo"))
    assert r.init(local_target, repo) is True and r.init(local_target, repo) is False
    snap = r.backup(local_target, repo, [str(data_tree)], tags=["ragops"]).snapshot_id
    assert snap and [s.short_id for s in r.snapshots(local_target, repo)] == [snap[:8]]
    r.restore(local_target, repo, snap, str(tmp_path / "out"))
    assert filecmp.cmp(tmp_path / "out" / str(data_tree).lstrip("/") / "blob.bin", data_tree / "blob.bin", shallow=False)
    assert clean(r.check(local_target, repo, "10%", raise_on_damage=False))
    local = r.make_repo(local_target, repo_settings("local", "copy-target"), role="secondary")
    r.init(local_target, local)
    r.copy(local_target, repo, local, [snap])
    assert r.verify_present(local_target, local, snap) is not None


@pytest.mark.slow
def test_restic_runs_on_a_remote_host_over_ssh_with_the_password_from_the_controller(
        make_target, repo_settings, data_tree, monkeypatch) -> None:
    monkeypatch.setenv("RAGOPS_TEST_REMOTE_PW", "remote-pw-" + os.urandom(6).hex())
    host = make_target(address="127.0.0.3")
    settings = repo_settings("local").model_copy(update={"password_file": None, "password_env": "RAGOPS_TEST_REMOTE_PW"})
    repo = r.make_repo(host, settings)
    assert r.init(host, repo) is True
    summary = r.backup(host, repo, [str(data_tree)], tags=["ragops"], host_tag="h3")
    assert summary.snapshot_id and r.snapshots(host, repo)[0].hostname == "h3"


@pytest.mark.slow
def test_s3_round_trip_reports_bucket_versioning_and_copies_off_site(local_target, repo_settings, data_tree, tmp_path, capsys) -> None:
    repo = r.make_repo(local_target, repo_settings("s3", "main"))
    assert ensure_bucket(repo, create=False).existed is False
    assert r.init(local_target, repo) is True
    assert "versioning: never enabled" in capsys.readouterr().err
    info = ensure_bucket(repo, create=False)
    assert info.existed and info.versioning == "never enabled"
    snap = r.backup(local_target, repo, [str(data_tree)], tags=["ragops"]).snapshot_id
    assert snap and clean(r.check(local_target, repo, "1/3", raise_on_damage=False))
    r.restore(local_target, repo, "latest", str(tmp_path / "out"))
    assert (tmp_path / "out" / str(data_tree).lstrip("/") / "notes.txt").read_text() == "hello restic\n" * 100
    local = r.make_repo(local_target, repo_settings("local", "from-s3"), role="secondary")
    r.init(local_target, local)
    r.copy(local_target, repo, local, [snap])  # RESTIC_FROM_PASSWORD through the environment
    assert r.verify_present(local_target, local, snap) is not None


@pytest.mark.slow
def test_an_unreachable_s3_endpoint_is_one_clear_error_fast(local_target, repo_settings, free_port) -> None:
    settings = repo_settings("s3", "gone")
    dead = settings.model_copy(update={"url": f"s3:http://127.0.0.1:{free_port()}/gone-bucket"})
    repo = r.make_repo(local_target, dead)
    t0 = time.monotonic()
    with pytest.raises(RepoUnreachableError, match="unreachable"):
        ensure_bucket(repo)
    with pytest.raises(RepoUnreachableError, match=r"unreachable from the host: 127\.0\.0\.1:\d+"):
        r.snapshots(local_target, repo)  # restic 0.18 alone would retry for many minutes
    assert time.monotonic() - t0 < 30


@pytest.mark.slow
def test_secrets_never_show_in_ps_or_in_any_output(local_target, repo_settings, tmp_path, capsys) -> None:
    """ps is sampled every 20 ms with -ww (unlimited width: without it, piped ps cuts lines at 80
    columns and could hide a secret at the end of a long command line)."""
    big = tmp_path / "big"
    big.mkdir()
    for i in range(8):
        (big / f"f{i}.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    repo = r.make_repo(local_target, repo_settings("s3", "secrets"))
    secrets = [v for k, v in repo.secrets.items() if k in ("RESTIC_PASSWORD", "AWS_SECRET_ACCESS_KEY")]
    assert len(secrets) == 2
    seen: list[str] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            seen.append(subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        r.init(local_target, repo)
        summary = r.backup(local_target, repo, [str(big)], tags=["ragops"])
        snaps = r.snapshots(local_target, repo)
        with pytest.raises(WrongPasswordError) as failed:
            bad = r.Repo(**{**repo.__dict__, "secrets": {**repo.secrets, "RESTIC_PASSWORD": "wrong-" + secrets[0]}})
            r.snapshots(local_target, bad)
    finally:
        stop.set()
        sampler.join()
    assert any("restic" in s and " backup " in s for s in seen), "ps never saw restic running"
    captured = capsys.readouterr()
    texts = seen + [captured.out, captured.err, repr(summary), repr(snaps), str(failed.value), repr(repo)]
    for secret in secrets:
        assert not any(secret in t for t in texts)


def test_a_lock_from_another_machine_counts_as_stale_only_after_30_minutes(local_target) -> None:
    from ragops.backup.repository import check_lock_holder, classify_failure
    from ragops.seam import CmdResult

    repo = r.Repo(url="/r", password_file="/p")
    text = ("unable to create lock in backend: repository is already locked exclusively by PID {pid} on {host} by root "
            "(UID 0, GID 0)\nlock was created at 2026-01-01 03:00:00 ({age} ago)\nstorage ID af8afef9\n")
    young = classify_failure(repo, "local", CmdResult("x", stderr=text.format(pid=1, host="elsewhere", age="12m3.5s"), exited=1), "check")
    old = classify_failure(repo, "local", CmdResult("x", stderr=text.format(pid=1, host="elsewhere", age="2h0m1s"), exited=11), "check")
    dead_here = classify_failure(repo, "local", CmdResult("x", stderr=text.format(pid=2**22 + 7, host=os.uname().nodename, age="5s"), exited=1), "check")
    assert isinstance(young, RepoLockedError) and young.lock_host == "elsewhere" and young.age_s == pytest.approx(723.5)
    assert not check_lock_holder(local_target, young)  # its PID cannot be checked from here
    assert check_lock_holder(local_target, old)
    assert check_lock_holder(local_target, dead_here)
