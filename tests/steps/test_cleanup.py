"""cleanup: the planned find command, its output parsing, and real runs on the local host."""

from __future__ import annotations

import os

import pytest
from fleet_helpers import files_under, hash_tree, make_target, make_tree, set_age

from ragops.config import CleanupRoot
from ragops.errors import SafetyError
from ragops.report import FAILED, OK, SKIPPED
from ragops.steps.cleanup import RootReport, make_find_command, parse_find_output, run_cleanup


def test_find_command_is_one_safe_find_per_root():
    cmd = make_find_command(CleanupRoot(root="/srv/logs/", patterns=["*.log", "a b.txt"], max_age_days=3), delete=True)
    assert cmd == (
        'R=/srv/logs; [ -d "$R" ] || { echo MISSING; exit 0; }; '
        '[ "$(readlink -f -- "$R")" = "$R" ] || { echo "RESOLVES $(readlink -f -- "$R")"; exit 0; }; '
        "echo BEGIN; exec find -P /srv/logs -mindepth 1 -ignore_readdir_race -xdev -type f "
        "\\( -name '*.log' -o -name 'a b.txt' \\) -mtime +3 -printf '%s\\t%p\\0' -delete"
    )


def test_find_command_lists_without_deleting_and_may_cross_filesystems():
    cmd = make_find_command(CleanupRoot(root="/srv/tmp", cross_filesystems=True), delete=False)
    assert "-delete" not in cmd and "-xdev" not in cmd
    assert cmd.endswith("-mtime +7 -printf '%s\\t%p\\0'")


@pytest.mark.parametrize("root", ["/", "//", "/./", "relative/logs", "/var/../etc"])
def test_find_command_refuses_unsafe_roots_even_without_config_validation(root):
    unchecked = CleanupRoot.model_construct(root=root, patterns=["*.log"], max_age_days=7, cross_filesystems=False)
    with pytest.raises(SafetyError, match="refusing cleanup root"):
        make_find_command(unchecked, delete=True)


def test_find_output_is_parsed_into_files_and_bytes():
    report = RootReport(root="/r", kind="logs")
    parse_find_output("BEGIN\n10\t/r/a.log\x005\t/r/tab\there.log\x00", report, keep_all=True)
    assert (report.status, report.files, report.bytes) == (OK, 2, 15)
    assert report.paths == [("/r/a.log", 10), ("/r/tab\there.log", 5)]


def test_find_output_reports_a_missing_root_as_skipped_and_a_symlinked_root_as_refused():
    missing = RootReport(root="/r", kind="logs")
    parse_find_output("MISSING\n", missing, keep_all=False)
    assert missing.status == SKIPPED
    resolved = RootReport(root="/r", kind="logs")
    parse_find_output("RESOLVES /elsewhere\n", resolved, keep_all=False)
    assert resolved.status == FAILED and "resolves to /elsewhere" in resolved.message


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
