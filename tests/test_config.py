"""ragops.yaml: schema validation, every error at once, environment overrides, host selection."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from ragops.config import (
    CleanupRoot,
    RagopsConfig,
    find_config_path,
    load_config,
    make_env_overrides,
    select_hosts,
)
from ragops.errors import ConfigError, ExitCode


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ragops.yaml"
    path.write_text(text)
    return path


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(str(path), environ=environ or {})
    assert info.value.exit_code == ExitCode.CONFIG_ERROR
    return info.value.problems


def test_a_wrong_type_names_file_host_and_field(tmp_path):
    path = write(tmp_path, "hosts:\n  prod1:\n    port: twenty-two\n")
    assert problems_of(path) == [f"{path}: hosts.prod1.port: must be an integer"]


def test_unknown_keys_are_rejected_with_a_did_you_mean_hint(tmp_path):
    path = write(tmp_path, "defaults:\n  lgos: []\n  api: {urll: x}\nhosts:\n  prod1: {adress: 10.0.0.1}\n")
    problems = problems_of(path)
    assert f"{path}: defaults.lgos: unknown field (did you mean 'logs'?)" in problems
    assert f"{path}: defaults.api.urll: unknown field (did you mean 'url'?)" in problems
    assert f"{path}: hosts.prod1.adress: unknown field (did you mean 'address'?)" in problems


def test_every_error_is_reported_at_once_with_the_file_path(tmp_path):
    path = write(tmp_path, """
parallel: many
defaults:
  api: {timeout_s: fast}
hosts:
  prod1:
    port: "22x"
    strict_host_key_checking: maybe
    logs: [{root: var/log}, {root: /}, {root: /var/../etc}, {root: /srv/log, patterns: ["../x"]}]
  prod2:
    temp: [{root: //}]
""")
    problems = problems_of(path)
    assert all(p.startswith(f"{path}: ") for p in problems)
    text = "\n".join(problems)
    for expected in ("parallel: must be an integer", "defaults.api.timeout_s: must be a number",
                     "hosts.prod1.port: must be an integer", "hosts.prod1.strict_host_key_checking: must be true or false",
                     "hosts.prod1.logs[0].root: must be an absolute path", "hosts.prod1.logs[1].root: refusing to clean '/'",
                     "hosts.prod1.logs[2].root: must not contain '..'", "hosts.prod1.logs[3].patterns: pattern '../x'",
                     "hosts.prod2.temp[0].root: refusing to clean '/'"):
        assert expected in text
    assert len(problems) == 9


def test_a_yaml_syntax_error_names_line_and_column(tmp_path):
    path = write(tmp_path, "hosts:\n  prod1:\n    port: [22\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: line 4, column 1: invalid YAML")


def test_a_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found \\(from --config\\)"):
        load_config(str(tmp_path / "nope.yaml"), environ={})
    with pytest.raises(ConfigError, match="from RAGOPS_CONFIG"):
        find_config_path(None, {"RAGOPS_CONFIG": str(tmp_path / "gone.yaml")})


def test_ragops_config_names_the_file_when_there_is_no_flag(tmp_path):
    path = write(tmp_path, "parallel: 3\n")
    assert load_config(None, environ={"RAGOPS_CONFIG": str(path)}).config.parallel == 3


def test_without_any_file_the_embedded_demo_config_maintains_the_demo_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaded = load_config(None, environ={"RAGOPS_DEMO_DIR": str(tmp_path / "demo")})
    assert loaded.source == "embedded demo config"
    local = loaded.hosts["local"].settings
    assert local.logs[0].root == str(tmp_path / "demo" / "logs")
    assert local.lock_path == str(tmp_path / "demo" / "run" / "ragops.lock")


def test_patterns_must_be_plain_name_globs():
    for bad in ("../*.log", "a/b.log", "..", ".", ""):
        with pytest.raises(ValueError):
            CleanupRoot(root="/var/log", patterns=[bad])
    assert CleanupRoot(root="/var/log", patterns=["*.log", "app-*.txt"]).patterns == ["*.log", "app-*.txt"]


def test_defaults_apply_to_every_host_and_a_host_entry_overrides_them(tmp_path):
    path = write(tmp_path, """
defaults:
  lock_ttl_s: 60
  logs: [{root: /srv/logs}]
  api: {url: "http://127.0.0.1:8000", timeout_s: 2}
hosts:
  prod1: {api: {timeout_s: 9}}
  prod2: {lock_ttl_s: 30}
""")
    hosts = load_config(str(path), environ={}).hosts
    assert set(hosts) == {"prod1", "prod2", "local"}
    assert hosts["prod1"].settings.api.timeout_s == 9 and hosts["prod1"].settings.api.url == "http://127.0.0.1:8000"
    assert hosts["prod2"].settings.lock_ttl_s == 30 and hosts["prod1"].settings.lock_ttl_s == 60
    assert hosts["local"].settings.logs[0].root == "/srv/logs"
    assert hosts["prod1"].settings.logs[0].max_age_days == 7 and hosts["prod1"].settings.logs[0].patterns == ["*.log"]


def test_environment_overrides_the_file_and_the_file_overrides_defaults(tmp_path):
    path = write(tmp_path, "parallel: 3\ndefaults:\n  api: {timeout_s: 2}\nhosts:\n  prod1: {}\n")
    plain = load_config(str(path), environ={})
    assert plain.config.parallel == 3 and plain.config.fail_percent == 100
    assert plain.hosts["prod1"].settings.api.timeout_s == 2 and plain.hosts["prod1"].settings.api.retries == 2
    env = {"RAGOPS_PARALLEL": "5", "RAGOPS_API__TIMEOUT_S": "9.5", "RAGOPS_LOCK_TTL_S": "99",
           "RAGOPS_DEBUG_COMMANDS": "1"}  # another tool's variable is not a setting
    over = load_config(str(path), environ=env)
    assert over.config.parallel == 5
    assert over.hosts["prod1"].settings.api.timeout_s == 9.5
    assert over.hosts["local"].settings.lock_ttl_s == 99


def test_bad_environment_overrides_are_all_reported(tmp_path):
    path = write(tmp_path, "hosts:\n  prod1: {}\n")
    problems = problems_of(path, {"RAGOPS_PARALLEL": "lots", "RAGOPS_API__TIMEOUT_S": "slow",
                                  "RAGOPS_APY__URL": "x", "RAGOPS_PARALEL": "2"})
    text = "\n".join(problems)
    assert "environment: parallel: must be an integer" in text
    assert "environment: hosts.prod1.api.timeout_s: must be a number" in text
    assert "environment RAGOPS_APY__URL: unknown setting" in text
    assert "environment RAGOPS_PARALEL: unknown setting" in text and "did you mean RAGOPS_PARALLEL?" in text


def test_make_env_overrides_builds_nested_host_settings():
    top, host, problems = make_env_overrides({"RAGOPS_FAIL_PERCENT": "50", "RAGOPS_REDIS__PORT": "6380",
                                              "RAGOPS_CONFIG": "/x", "HOME": "/root"})
    assert top == {"fail_percent": 50}
    assert host == {"redis": {"port": 6380}}
    assert problems == []


def test_cross_field_checks_name_the_host(tmp_path):
    path = write(tmp_path, "hosts:\n  prod1:\n    continue_on_error: [backup]\n    disk: {warn_percent: 95, fail_percent: 90}\n")
    problems = problems_of(path)
    assert f"{path}: hosts.prod1.continue_on_error: 'backup' is not one of the host's steps" in problems
    assert f"{path}: hosts.prod1.disk.warn_percent: must not exceed fail_percent" in problems


@pytest.fixture
def fleet(tmp_path):
    path = write(tmp_path, """
hosts:
  prod1: {groups: [prod]}
  prod2: {groups: [prod, eu]}
  edge: {groups: [eu]}
""")
    return load_config(str(path), environ={})


def test_host_selection_takes_names_groups_and_local_without_duplicates(fleet):
    names = [h.name for h in select_hosts(fleet, "edge,@prod,prod1,local")]
    assert names == ["edge", "prod1", "prod2", "local"]
    assert [h.name for h in select_hosts(fleet, "@eu")] == ["prod2", "edge"]


def test_unknown_host_names_and_groups_are_all_reported(fleet):
    with pytest.raises(ConfigError) as info:
        select_hosts(fleet, "prod3,@staging,edge")
    assert info.value.problems == [
        f"{fleet.source}: --host prod3: unknown host (did you mean 'prod2'?)",
        f"{fleet.source}: --host @staging: no host is in group 'staging'",
    ]


def test_an_empty_host_list_is_refused(fleet):
    for spec in ("", " ", None):
        with pytest.raises(ConfigError, match="no host given"):
            select_hosts(fleet, spec)
    for spec in (",", "local,", ",local", "local,,h1"):
        with pytest.raises(ConfigError, match="an empty name in the list"):
            select_hosts(fleet, spec)


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    seen.add(model)
    for field in model.model_fields.values():
        for arg in (field.annotation, *typing.get_args(field.annotation)):
            for inner in (arg, *typing.get_args(arg)):
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner not in seen:
                    _models(inner, seen)


def test_every_schema_field_has_a_description():
    seen: set[type[BaseModel]] = set()
    _models(RagopsConfig, seen)
    assert len(seen) >= 10
    missing = [f"{m.__name__}.{name}" for m in seen for name, f in m.model_fields.items() if not (f.description or "").strip()]
    assert missing == []


@pytest.mark.parametrize(("text", "line", "key"), [
    ("defaults:\n  parallel_x: 1\nparallel: 2\nparallel: 3\n", 4, "parallel"),
    ("hosts:\n  prod1: {address: a}\n  prod2: {}\n  prod1: {address: b}\n", 4, "prod1"),
    ("defaults:\n  api: {url: 'http://a', url: 'http://b'}\n", 2, "url"),
])
def test_a_duplicate_yaml_key_is_refused_naming_file_line_and_key(tmp_path, text, line, key):
    path = write(tmp_path, text)
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: line {line}, ") and f"duplicate key {key!r} (first at line" in problem


def test_yaml_merge_keys_are_not_duplicates():
    from ragops.config import read_yaml

    assert read_yaml("inline", "a: &b {k: 1}\nc:\n  <<: *b\n  k: 2\n") == {"a": {"k": 1}, "c": {"k": 2}}


def test_a_config_with_a_non_utf8_byte_names_file_line_and_column(tmp_path):
    path = tmp_path / "ragops.yaml"
    path.write_bytes(b"parallel: 2\nhosts:\n  caf\xe9: {}\n")
    assert problems_of(path) == [f"{path}: line 3, column 6: not valid UTF-8 (byte 0xe9); save the file as UTF-8"]


def test_hosts_with_the_same_overrides_share_one_settings_object(tmp_path):
    path = write(tmp_path, "defaults:\n  lock_ttl_s: 60\nhosts:\n  a: {address: 10.0.0.1, groups: [g]}\n"
                           "  b: {address: 10.0.0.2, lock_ttl_s: 99}\n  c: {address: 10.0.0.3, lock_ttl_s: 99}\n  d: {}\n")
    hosts = load_config(str(path), environ={}).hosts
    assert hosts["a"].settings is hosts["d"].settings is hosts["local"].settings
    assert hosts["b"].settings is hosts["c"].settings and hosts["b"].settings.lock_ttl_s == 99
    assert hosts["a"].settings.lock_ttl_s == 60 and hosts["a"].entry.address == "10.0.0.1"
    assert [h.name for h in select_hosts(load_config(str(path), environ={}), "@g,a,b")] == ["a", "b"]


def test_a_group_of_many_hosts_is_selected_in_linear_time(tmp_path):
    import time

    lines = ["hosts:"] + [f"  n{i}: {{groups: [big]}}" for i in range(20000)]
    loaded = load_config(str(write(tmp_path, "\n".join(lines) + "\n")), environ={})
    t0 = time.monotonic()
    assert len(select_hosts(loaded, "@big,@big,n1")) == 20000
    assert time.monotonic() - t0 < 2.0  # the old `m not in chosen` list scan took minutes here
