"""The README's configuration reference is generated from the schema and must not drift."""

from pathlib import Path

from ragops.config import RagopsConfig
from ragops.schema_doc import iter_fields, make_reference
from ragops.tasks.config_tasks import END, START, make_readme_with_reference

ROOT = Path(__file__).resolve().parent.parent


def test_readme_config_reference_matches_the_schema():
    readme = (ROOT / "README.md").read_text()
    assert START in readme and END in readme
    fresh = make_readme_with_reference(readme, make_reference(RagopsConfig))
    assert readme == fresh, "README config reference is stale: run `invoke config.reference --write README.md`"


def test_every_config_field_has_a_description():
    missing = [path for path, field in iter_fields(RagopsConfig) if field is not None and not field.description]
    assert missing == []


def test_readme_names_the_two_quick_start_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/demo.sh" in readme and "bash scripts/test.sh" in readme
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
