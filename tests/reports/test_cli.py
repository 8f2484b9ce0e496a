"""`ctid report`: a readable table by default, files in every format, and bad parameters as one line
with exit 2 (also under fuzzing: never a traceback)."""

from __future__ import annotations

import io
import json

import openpyxl
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ctid.cli import report_cmd
from ctid.store import engine as engines
from ctid.store import migrate

from .history import load


def _cli() -> typer.Typer:
    app = typer.Typer()
    report_cmd.register(app)

    @app.callback()
    def _root() -> None:
        """Test root."""

    return app


def _config(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'ctid.db'}"
    migrate.upgrade(url)
    engine = engines.create(url)
    load(engine)
    engine.dispose()
    path = tmp_path / "ctid.yaml"
    path.write_text(f"database:\n  url: {url}\nreports:\n  timezone: Europe/Moscow\n"
                    "agents:\n  alice: {name: Alice Smirnova}\n  bob: {name: Bob Ivanov}\n")
    return str(path)


def test_table_and_files(tmp_path):
    config = _config(tmp_path)
    runner = CliRunner()
    result = runner.invoke(_cli(), ["report", "summary", "-c", config, "--from", "2026-03-02", "--to", "2026-03-03"])
    assert result.exit_code == 0, result.output
    assert "62.5 %" in result.stdout and "Definitions:" in result.stdout
    out = tmp_path / "agents.xlsx"
    result = runner.invoke(_cli(), ["report", "agents", "-c", config, "--from", "2026-03-02", "--to", "2026-03-03",
                                    "--format", "xlsx", "--out", str(out)])
    assert result.exit_code == 0, result.output
    sheet = openpyxl.load_workbook(io.BytesIO(out.read_bytes())).worksheets[0]
    assert {sheet.cell(2, 1).value, sheet.cell(3, 1).value} == {"Alice Smirnova", "Bob Ivanov"}
    result = runner.invoke(_cli(), ["report", "by-group", "-c", config, "--from", "2026-03-02", "--to", "2026-03-03",
                                    "--format", "json"])
    groups = {r["group"]: r["offered"] for r in json.loads(result.stdout)["tables"][0]["rows"]}
    assert groups == {"sales": 4, "support": 4, "(none)": 0}  # c7 is outbound, in no group


def test_bad_parameters_one_line_exit_2(tmp_path):
    config = _config(tmp_path)
    runner = CliRunner()
    for args, text in (
        (["nope"], "unknown report 'nope'"),
        (["summary", "--from", "2026-03-05", "--to", "2026-03-01"], "is after --to"),
        (["summary", "--from", "2020-01-01", "--to", "2026-01-01"], "longer than reports.max_days"),
        (["summary", "--format", "pdf"], "--format 'pdf' is not one of"),
        (["by-hour", "--group-by", "agent"], "--group-by 'agent' is not one of hour"),
    ):
        result = runner.invoke(_cli(), ["report", *args, "-c", config])
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ctid: error: ") and text in lines[0], result.output


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(args=st.lists(st.one_of(st.sampled_from(["summary", "missed", "--from", "--to", "--group-by", "--format",
                                                "--agent", "--lang", "2026-03-02", "day", "xlsx", "ru", "csv"]),
                               st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)),
                     max_size=6))
def test_fuzzed_arguments_never_traceback(tmp_path_factory, args):
    config = _CONFIG.get("path") or _CONFIG.setdefault("path", _config(tmp_path_factory.mktemp("cli")))
    out = tmp_path_factory.mktemp("out") / "r.bin"
    result = CliRunner().invoke(_cli(), ["report", *args, "-c", config, "--out", str(out)])
    assert result.exit_code in (0, 2), (args, result.output)
    assert "Traceback" not in result.output
    if result.exit_code == 2 and result.output.startswith("ctid: error:"):
        assert len(result.output.strip().splitlines()) == 1


_CONFIG: dict[str, str] = {}
