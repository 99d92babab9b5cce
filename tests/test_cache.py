"""The response cache is a real SQLite file that survives a killed writer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from distalign.store import ResponseCache, request_key


def test_key_is_canonical_and_sensitive() -> None:
    a = {"prompt": "Q?", "temperature": 1.0, "sample": 0}
    b = {"sample": 0, "temperature": 1.0, "prompt": "Q?"}
    assert request_key(a) == request_key(b)
    assert request_key(a) != request_key({**a, "sample": 1})
    assert request_key(a) != request_key({**a, "template_version": 2})


def test_roundtrip_missing_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    with ResponseCache(path) as cache:
        cache.put("k1", {"p": 1}, {"text": "A"})
        cache.put_error("k2", {"p": 2}, "HTTP 500")
        assert cache.get("k1") == {"text": "A"}
        assert cache.get("k2") is None
        assert cache.error("k2") == "HTTP 500"
        assert cache.missing(["k1", "k2", "k3"]) == {"k2", "k3"}
    # a real database file, readable by any sqlite client, in WAL mode
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 2


WRITER = """
import sys, time
from distalign.store import ResponseCache
cache = ResponseCache(sys.argv[1])
i = 0
while True:
    cache.put(f"k{i}", {"i": i}, {"text": str(i)})
    print(i, flush=True)
    i += 1
    time.sleep(0.01)
"""


def test_kill_minus_nine_loses_no_committed_response(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acknowledged = -1
    deadline = time.time() + 30
    while acknowledged < 20 and time.time() < deadline:
        acknowledged = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with ResponseCache(path) as cache:
        for i in range(acknowledged + 1):
            assert cache.get(f"k{i}") == {"text": str(i)}


def test_results_round_trip_through_the_top_level_loader(tmp_path: Path) -> None:
    import distalign
    from distalign.results import items_frame, save_items

    frame = items_frame(
        [{"model": "m", "letters": ["A", "B"], "pred": [0.5, 0.5], "truth": [1.0, 0.0], "tv": 0.5}]
    )
    save_items(frame, tmp_path / "run", {"mode": "standard"})
    loaded = distalign.load_results(tmp_path / "run")
    assert list(loaded.columns[: len(frame.columns)]) == list(frame.columns)
    assert loaded.loc[0, "pred"] == [0.5, 0.5]
    assert loaded.loc[0, "tv"] == 0.5
