"""The JSON Schemas of profiles and edgepipe.yaml: current, described, and as strict as the loader where they can be.

Editors and pre-commit hooks validate files with them, so: every built-in
profile and the bundled example validate; every profile and project config of
the bad-config corpus (tests/test_bad_corpus.py) is refused, by the YAML
reader or else by the schema; the committed files and the generated table of
docs/target-profiles.md are what tools/gen_docs.py writes today.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from edgepipe.cli import cli
from edgepipe.config.json_schema import profile_schema, project_schema, undescribed, unknown_parsers
from edgepipe.config.yaml_io import load_yaml
from edgepipe.errors import EdgepipeError
from test_bad_corpus import CASES, Env

REPO = Path(__file__).resolve().parent.parent
COMMENT = "# yaml-language-server: $schema=../schemas/target-profile.schema.json"


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "tools" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _validator(doc: dict) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(doc)
    return jsonschema.Draft202012Validator(doc)


PROFILE, PROJECT = _validator(profile_schema()), _validator(project_schema())


def test_the_committed_schemas_and_the_generated_doc_table_are_current(capsys):
    assert _gen_docs().main(["--check"]) == 0, capsys.readouterr().err


def test_the_doc_check_notices_a_stale_file(tmp_path, monkeypatch):
    gen = _gen_docs()
    stale = tmp_path / "target-profiles.md"
    stale.write_text(gen.DOC.read_text().replace("| `threads` |", "| `thread_count` |"))
    monkeypatch.setattr(gen, "DOC", stale)
    assert gen.main(["--check"]) == 1


def test_targets_schema_prints_the_committed_documents():
    for args, name in ((["targets", "schema"], "target-profile.schema.json"),
                       (["targets", "schema", "--project", "--json"], "edgepipe.schema.json")):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, res.output
        assert res.output == (REPO / "schemas" / name).read_text()
        assert json.loads(res.output)["$schema"].endswith("/2020-12/schema")


@pytest.mark.parametrize("schema", [profile_schema(), project_schema()], ids=["profile", "project"])
def test_every_field_says_what_it_means(schema):
    assert undescribed(schema) == []


def test_every_unit_the_loader_parses_has_its_own_schema():
    """A new parser (a unit) is accepted as any string until edgepipe/config/json_schema.py learns its units."""
    assert unknown_parsers() == []


@pytest.mark.parametrize("path", sorted((REPO / "targets").glob("*.yaml")), ids=lambda p: p.name)
def test_every_built_in_profile_validates_and_names_the_schema_for_editors(path):
    lines = path.read_text().splitlines()
    assert lines[0] == COMMENT
    assert (path.parent / COMMENT.split("=", 1)[1]).resolve() == REPO / "schemas" / "target-profile.schema.json"
    assert list(PROFILE.iter_errors(yaml.safe_load(path.read_text()))) == []


def test_the_example_project_config_validates():
    assert list(PROJECT.iter_errors(yaml.safe_load((REPO / "examples/digits/edgepipe.yaml").read_text()))) == []


@pytest.mark.parametrize("text", [
    "memory: {flash: 4096, ram: '512KiB'}", "memory: {flash: 2MB, ram: 1.5KiB}", "memory: {ram: 1.0e+5}",
    "latency: 20ms", "latency: 1e2ms", "latency: 500us", "latency: 1.5 s", "device: {clock: 64MHz, cores: 2}",
    "cost_model: {memory_bandwidth: 4GB/s, per_op_overhead: 5us, int8_macs_per_second: 1.4e+10}",
    "extends: _mcu", "accuracy: {max_drop: 0.5, drop_mode: relative, min_cosine: -0.5}",
    "tflm: {arena_margin: 2KiB, arena_margin_ratio: 0}",
])
def test_what_the_loader_accepts_the_schema_accepts(text, tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text(text + "\n")
    res = CliRunner().invoke(cli, ["targets", "show", str(path)])
    assert res.exit_code == 0, res.output
    data = load_yaml(path).data
    assert list(PROFILE.iter_errors(data)) == [], text


def _written_yaml(case, tmp_path: Path) -> list[Path]:
    case.make(Env(tmp_path, "", None, None, "", ""))
    return sorted(p for p in tmp_path.rglob("*") if p.suffix in (".yaml", ".yml"))


def _refused(path: Path, validator) -> str | None:
    """'yaml' or 'schema' when the file is refused, by what; None when both accept it."""
    try:
        data = load_yaml(path).data
    except EdgepipeError:
        return "yaml"
    return "schema" if list(validator.iter_errors(data)) else None


BAD = [c for c in CASES if c.id.startswith(("profile-", "project-"))]


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_every_bad_config_of_the_corpus_is_refused(case, tmp_path):
    validator = PROFILE if case.id.startswith("profile-") else PROJECT
    files = _written_yaml(case, tmp_path)
    assert files, "the case writes a config"
    assert any(_refused(p, validator) for p in files), [p.name for p in files]


def test_the_schema_itself_refuses_the_corpus_values_yaml_lets_through(tmp_path):
    """NaN, infinities, overflowing exponents, negative sizes, bare times, empty files, bad data sources."""
    by_schema = []
    for i, case in enumerate(BAD):
        validator = PROFILE if case.id.startswith("profile-") else PROJECT
        reasons = {_refused(p, validator) for p in _written_yaml(case, tmp_path / str(i))}
        if "yaml" not in reasons:
            assert "schema" in reasons, case.id
            by_schema.append(case.id)
    assert len(by_schema) >= 45, by_schema
    assert {"profile-accuracy.max_drop=.nan", "profile-memory.ram=1e400", "profile-empty",
            "project-data.eval={x: x_eval}", "project-preprocess.std=0"} <= set(by_schema)


def test_the_ci_examples_run_verify_upload_the_page_and_validate_profiles():
    actions = yaml.safe_load((REPO / "examples/ci/github-actions.yml").read_text())
    steps = [s for job in actions["jobs"].values() for s in job["steps"]]
    runs = " ".join(s.get("run", "") for s in steps)
    assert "edgepipe verify" in runs and "--report" in runs
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert uploads and "report.html" in json.dumps(uploads)
    hooks = yaml.safe_load((REPO / "examples/ci/pre-commit-config.yaml").read_text())
    ids = [h["id"] for repo in hooks["repos"] for h in repo["hooks"]]
    assert "check-jsonschema" in ids and "edgepipe-targets" in ids
    assert "target-profile.schema.json" in (REPO / "examples/ci/pre-commit-config.yaml").read_text()
