"""End to end on the real embedded model: the run, its cache, and resuming after kill -9."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distalign.runner import RunConfig, Runner

GRID = [
    "--dataset", "opinionqa", "--group", "POLPARTY=Democrat", "--steering", "persona",
    "--method", "samples", "--n", "8", "--questions", "3",
]  # fmt: skip


def _config(tmp_path: Path, reference_dir: Path, **overrides: object) -> RunConfig:
    settings: dict[str, object] = {
        "datasets": ["opinionqa"],
        "groups": ["POLPARTY=Democrat"],
        "steerings": ["persona"],
        "methods": ["logp", "verbalize", "sequence"],
        "questions": 2,
        "n": 10,
        "data_dir": str(reference_dir),
        "out": str(tmp_path / "run"),
    }
    settings.update(overrides)
    return RunConfig(**settings)  # type: ignore[arg-type]


def test_run_scores_every_item_and_rerun_is_free(tmp_path: Path, reference_dir: Path) -> None:
    config = _config(tmp_path, reference_dir)
    first = Runner(config)
    frame = first.run()
    assert len(frame) == 2 * 3  # questions x methods
    assert set(frame["status"]) <= {"ok", "parse_failure"}
    ok = frame[frame["status"] == "ok"]
    assert not ok.empty
    for pred in ok["pred"]:
        assert sum(pred) == pytest.approx(1.0)
    assert first.stats.calls_sent >= 6
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    identity = manifest["model_identity"]["embedded"]
    assert identity["backend"] == "llamacpp"
    assert identity["fingerprint"]
    assert manifest["config"]["seeds"] == [0]
    assert manifest["distalign_version"]
    again = Runner(config)
    again.run()
    assert again.stats.calls_sent == 0
    assert again.stats.calls_cached == again.stats.calls_total


def test_prompt_mode_is_part_of_the_cache_key(tmp_path: Path, reference_dir: Path) -> None:
    config = _config(tmp_path, reference_dir, methods=["logp"], questions=1)
    Runner(config).run()
    paper = Runner(config.model_copy(update={"prompt_mode": "paper"}))
    paper.run()
    assert paper.stats.calls_sent == 1


def _cached(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(db, timeout=1)
        n = int(con.execute("SELECT COUNT(*) FROM responses WHERE error IS NULL").fetchone()[0])
        con.close()
        return n
    except sqlite3.OperationalError:
        return 0


def test_kill_9_midway_then_rerun_sends_only_what_was_missing(
    tmp_path: Path, reference_dir: Path
) -> None:
    out = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "distalign.cli",
        "run",
        *GRID,
        "--data-dir",
        str(reference_dir),
        "-o",
        str(out),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = out / "cache.sqlite"
    deadline = time.time() + 240
    while _cached(db) < 6 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    completed = _cached(db)
    assert 6 <= completed < 24
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    total = 3 * 8  # 3 questions x 8 independent samples
    assert f"{total} calls: {completed} from cache, {total - completed} sent" in result.stdout


def test_score_rows_marks_a_prediction_that_is_no_distribution_not_scored() -> None:
    from distalign.results import Status
    from distalign.runner import score_rows

    def row(pred: list[float]) -> dict[str, object]:
        truth = [0.25, 0.25, 0.5]
        return {
            "status": Status.OK,
            "pred": pred,
            "truth": truth,
            "ordinal": (0, 1, 2),
            "detail": None,
        }

    rows = score_rows([row([0.2, 0.3, 0.5]), row([0.5, 0.5, 0.5]), row([0.1, float("nan"), 0.9])])
    assert rows[0]["status"] == Status.OK and rows[0]["tv"] == pytest.approx(0.05)
    for bad, why in zip(rows[1:], ["values sum to 1.5", "NaN or infinite"], strict=True):
        assert bad["status"] == Status.NOT_SCORED and "tv" not in bad and "ordinal" not in bad
        assert why in bad["detail"] and bad["detail"].startswith("not scored")
