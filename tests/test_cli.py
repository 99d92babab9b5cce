"""The command line end to end: config files, the reference import and the leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from distalign.cli import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.stdout.strip()


def test_run_from_toml_config(tmp_path: Path, reference_dir: Path) -> None:
    config = tmp_path / "exp.toml"
    config.write_text(
        f"""
datasets = ["nytimes"]
groups = ["SEX=Female"]
steerings = ["persona"]
methods = ["logp"]
questions = 2
data_dir = "{reference_dir}"
out = "{tmp_path / "out"}"
backend_options = {{ n_threads = 1, n_threads_batch = 1 }}
"""
    )
    result = runner.invoke(app, ["run", "--config", str(config), "--n-boot", "50"])
    assert result.exit_code == 0, result.stdout
    assert "2 calls: 0 from cache, 2 sent" in result.stdout
    items = pd.read_parquet(tmp_path / "out" / "items.parquet")
    assert list(items["dataset"].unique()) == ["nytimes"]
    assert (tmp_path / "out" / "leaderboard.csv").exists()


def test_bad_config_is_rejected_with_the_field_named(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('methods = ["logp"]\nquestoins = 3\n')
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code != 0
    assert "questoins" in result.output


def test_import_reference_and_leaderboard_paper_mode(tmp_path: Path, reference_dir: Path) -> None:
    out = tmp_path / "reference"
    result = runner.invoke(
        app,
        ["import-reference", "--data-dir", str(reference_dir), "--mode", "paper", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "paper" / "manifest.json").read_text())
    assert manifest["mode"] == "paper"
    result = runner.invoke(
        app, ["leaderboard", str(out / "paper"), "--n-boot", "200", "-o", str(tmp_path / "tables")]
    )
    assert result.exit_code == 0, result.output
    board = pd.read_csv(tmp_path / "tables" / "leaderboard_paper.csv")
    gpt4_v = board[(board["model"] == "GPT-4") & (board["method"] == "verbalize")]["mean"].item()
    assert abs(gpt4_v - 0.229) < 0.005
    assert (tmp_path / "tables" / "gap_paper.json").exists()


def test_dry_run_counts_requests_and_sends_nothing(tmp_path: Path, reference_dir: Path) -> None:
    out = tmp_path / "dry"
    args = ["run", "--data-dir", str(reference_dir), "--dataset", "nytimes", "--group", "SEX=Male"]
    args += [
        "--questions",
        "2",
        "--method",
        "logp,samples",
        "--n",
        "5",
        "-o",
        str(out),
        "--dry-run",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "nothing was sent" in result.output
    import sqlite3

    db = sqlite3.connect(out / "cache.sqlite")
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0
    lines = [line for line in result.output.splitlines() if "samples" in line]
    assert lines and "10" in lines[0]  # 2 questions x 5 samples, each its own call
