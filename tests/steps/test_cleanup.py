"""cleanup: the planned find command, its output parsing, escaping for people, and real runs (local, SSH)."""

from __future__ import annotations

import os

import pytest

from ragops.config import CleanupRoot
from ragops.errors import SafetyError
from ragops.report import FAILED, OK, SKIPPED
from ragops.steps.cleanup import RootReport, make_find_command, parse_find_output, printable, run_cleanup
from tests.fixtures.fleet_helpers import (
    files_under,
    hash_tree,
    make_host_entry,
    make_target,
    make_tree,
    run_invoke,
    set_age,
    write_config,
)


def test_find_command_enters_the_root_once_checks_it_and_walks_from_there():
    cmd = make_find_command(CleanupRoot(root="/srv/logs/", patterns=["*.log", "a b.txt"], max_age_days=3), delete=True)
    lines = cmd.split("\n")
    assert lines[:4] == [
        "R=/srv/logs",
        """[ -d "$R" ] || { printf 'MISSING\\0'; exit 0; }""",
        """cd -P -- "$R" || { printf 'FAILED\\tcannot enter the directory\\0'; exit 0; }""",
        """P=$(env pwd -P) && [ "$P" = "$R" ] || { printf 'RESOLVES\\t%s\\0' "$P"; exit 0; }""",
    ]
    assert "< /proc/self/mountinfo" in cmd and lines[-4] == lines[3]  # checked again after reading the mounts
    assert lines[-1] == ("""exec find -P . -mindepth 1 -ignore_readdir_race -xdev "$@" -type f """
                         """\\( -name '*.log' -o -name 'a b.txt' \\) -mtime +3 -delete -printf '%s\\t%P\\0'""")


def test_find_command_lists_without_deleting_and_may_cross_filesystems():
    cmd = make_find_command(CleanupRoot(root="/srv/tmp", cross_filesystems=True), delete=False)
    assert "-delete" not in cmd and "-xdev" not in cmd and "mountinfo" not in cmd
    assert cmd.endswith("""-type f \\( -name '*.log' \\) -mtime +7 -printf '%s\\t%P\\0'""")


@pytest.mark.parametrize("root", ["/", "//", "/./", "relative/logs", "/var/../etc"])
def test_find_command_refuses_unsafe_roots_even_without_config_validation(root):
    unchecked = CleanupRoot.model_construct(root=root, patterns=["*.log"], max_age_days=7, cross_filesystems=False)
    with pytest.raises(SafetyError, match="refusing cleanup root"):
        make_find_command(unchecked, delete=True)


def test_find_output_is_parsed_into_files_and_bytes_below_the_root():
    report = RootReport(root="/r/", kind="logs")
    parse_find_output("MOUNT\tsub/m\\040nt\\012x\0BEGIN\x0010\ta.log\x005\ttab\there\n.log\x00", report, keep_all=True)
    assert (report.status, report.files, report.bytes) == (OK, 2, 15)
    assert report.paths == [("/r/a.log", 10), ("/r/tab\there\n.log", 5)]
    assert report.mounts == ["/r/sub/m nt\nx"]


def test_find_output_reports_a_missing_root_as_skipped_and_a_symlinked_root_as_refused():
    missing = RootReport(root="/r", kind="logs")
    parse_find_output("MISSING\0", missing, keep_all=False)
    assert missing.status == SKIPPED
    resolved = RootReport(root="/r", kind="logs")
    parse_find_output("RESOLVES\t/else\nwhere\0", resolved, keep_all=False)
    assert resolved.status == FAILED and "resolves to /else\nwhere" in resolved.message
    for garbage in ("", "motd from a login shell\nBEGIN\0", "BEGI"):  # no trusted BEGIN record: nothing counted
        report = RootReport(root="/r", kind="logs")
        parse_find_output(garbage + "10\ta.log\0", report, keep_all=True)
        assert report.status == FAILED and report.files == 0


def test_names_are_escaped_for_human_output():
    assert printable("/r/plain name.log") == "/r/plain name.log"
    assert printable("a\nb\tc\\d\re\x1b[2K\x7f\u202e\u2028") == "a\\nb\\tc\\\\d\\re\\x1b[2K\\x7f\\u202e\\u2028"


def _settings(base):
    return {"logs": [{"root": str(base / "logs")}], "temp": [{"root": str(base / "tmp"), "max_age_days": 1}]}


def test_cleanup_deletes_exactly_the_old_matching_files(tmp_path):
    base = tmp_path / "host"
    tree = make_tree(base, old=2, new=2, size=10)
    odd = base / "logs" / "new\nline and space.log"
    odd.write_bytes(b"z" * 7)
    set_age(odd, 9)
    result = run_cleanup(make_target(tmp_path, _settings(base)))
    assert result.status == OK
    assert files_under(base) == tree["keep"]
    assert result.files == len(tree["old"]) + 1
    assert result.bytes_freed == 10 * len(tree["old"]) + 7
    roots = {r["kind"]: r for r in result.details["roots"]}
    assert roots["logs"]["files"] == 5 and roots["temp"]["files"] == 4
    assert str(odd) in {p["path"] for p in roots["logs"]["paths"]}


def test_cleanup_dry_run_lists_with_sizes_and_changes_nothing(tmp_path):
    base = tmp_path / "host"
    tree = make_tree(base, old=2, new=1, size=33)
    before = hash_tree(base)
    result = run_cleanup(make_target(tmp_path, _settings(base), dry=True))
    assert hash_tree(base) == before
    assert result.bytes_freed == 0 and result.files == len(tree["old"])
    listed = {p["path"]: p["bytes"] for r in result.details["roots"] for p in r["paths"]}
    assert listed == {str(p): 33 for p in tree["old"]}
    assert result.message.startswith("would delete 8 file(s)")


def test_cleanup_never_follows_symlinks_out_of_the_root(tmp_path):
    outside = tmp_path / "outside"
    make_tree(outside, old=2, new=0)
    before = hash_tree(outside)
    base = tmp_path / "host"
    (base / "logs").mkdir(parents=True)
    os.symlink(outside / "logs", base / "logs" / "linked-dir")
    os.symlink(outside / "logs" / "old-0.log", base / "logs" / "linked.log")
    set_age(base / "logs" / "linked.log", 30)
    result = run_cleanup(make_target(tmp_path, {"logs": [{"root": str(base / "logs")}]}))
    assert result.status == OK and result.files == 0
    assert hash_tree(outside) == before
    assert os.path.islink(base / "logs" / "linked.log")


def test_cleanup_refuses_a_symlinked_root(tmp_path):
    outside = tmp_path / "outside"
    make_tree(outside, old=1, new=0)
    before = hash_tree(outside)
    os.symlink(outside / "logs", tmp_path / "logs-link")
    result = run_cleanup(make_target(tmp_path, {"logs": [{"root": str(tmp_path / "logs-link")}]}))
    assert result.status == FAILED and "refused: resolves to" in result.message
    assert hash_tree(outside) == before


def test_cleanup_of_roots_that_do_not_exist_is_skipped(tmp_path):
    result = run_cleanup(make_target(tmp_path, {"logs": [{"root": str(tmp_path / "none")}]}))
    assert result.status == SKIPPED


def test_cleanup_without_roots_has_nothing_to_do(tmp_path):
    assert run_cleanup(make_target(tmp_path, {})).status == SKIPPED


FAKE = "[local] cleanup: ok"  # what a crafted name tries to print as a line of its own


def test_a_crafted_name_cannot_fake_a_line_in_the_dry_run_output(tmp_path, capsys):
    base = tmp_path / "host"
    (base / "logs").mkdir(parents=True)
    crafted = base / "logs" / f"x.log\n{FAKE}\t\\\x1b[2K.log"
    crafted.write_bytes(b"c" * 3)
    set_age(crafted, 30)
    result = run_cleanup(make_target(tmp_path, {"logs": [{"root": str(base / "logs")}]}, dry=True))
    err = capsys.readouterr().err
    assert FAKE not in err.splitlines() and "\x1b" not in err
    shown = str(base / "logs") + "/x.log\\n" + FAKE + "\\t\\\\\\x1b[2K.log"
    assert f"(dry run) delete {shown} (3 B)" in err
    assert result.details["roots"][0]["paths"] == [{"path": str(crafted), "bytes": 3}]  # JSON: the exact name
    assert crafted.exists()


@pytest.mark.slow
def test_over_ssh_a_crafted_name_is_escaped_in_the_dry_run_and_exact_in_the_json(tmp_path, sshd):
    base = tmp_path / "h2 [logs]*"  # a root with a space and glob characters, too
    (base / "logs").mkdir(parents=True)
    crafted = base / "logs" / f"x\n[h2] {FAKE[8:]}\n.log"
    crafted.write_bytes(b"c" * 3)
    set_age(crafted, 30)
    cfg = write_config(tmp_path / "ragops.yaml", {"hosts": {"h2": {**make_host_entry(sshd, "127.0.0.2"),
                                                                  "logs": [{"root": str(base / "logs")}]}}})
    res = run_invoke("cleanup", "--host", "h2", "--config", str(cfg), "--dry", "--json")
    assert res.returncode == 0, res.stderr
    assert f"[h2] {FAKE[8:]}" not in res.stderr.splitlines()
    assert f"(dry run) delete {base}/logs/x\\n[h2] {FAKE[8:]}\\n.log (3 B)" in res.stderr
    roots = res.json()["hosts"][0]["steps"][0]["details"]["roots"]
    assert roots[0]["paths"] == [{"path": str(crafted), "bytes": 3}] and crafted.exists()
