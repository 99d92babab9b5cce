"""``distalign view``: the real server on a real embedded-model run, over HTTP and in Chromium.

The run (2 OpinionQA questions, one group, Log-p + Verbalize) gets one hostile reply injected
into a copy of its items table; the viewer must show it as text and run nothing.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape
from typer.testing import CliRunner

from distalign.cli import app
from distalign.results import failure_pattern

REPO_ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "<script>window.pwned=1</script><img src=x onerror=\"document.title='pwned'\">"
DETAIL = f"not a distribution: {HOSTILE}"
CSP = "default-src 'none'"
runner = CliRunner()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, reference_dir: Path) -> Path:
    """A tiny embedded run, one Verbalize reply replaced by a hostile parse failure."""
    out = tmp_path_factory.mktemp("view") / "run"
    args = ["run", "-d", "opinionqa", "--group", "POLPARTY=Democrat", "--questions", "2"]
    args += ["--method", "logp,verbalize", "-s", "persona", "--data-dir", str(reference_dir)]
    result = runner.invoke(app, [*args, "-o", str(out), "--n-boot", "50", "--threads", "2"])
    assert result.exit_code == 0, result.output
    items = pd.read_parquet(out / "items.parquet")
    hostile = items.index[items["method"] == "verbalize"][0]
    items["pred"] = items["pred"].astype(object)
    items.at[hostile, "raw"] = HOSTILE
    items.at[hostile, "status"] = "parse_failure"
    items.at[hostile, "detail"] = DETAIL + "; attempts=3"
    items.at[hostile, "pred"] = None
    items.loc[hostile, ["tv", "js", "w1"]] = np.nan
    items.to_parquet(out / "items.parquet", index=False)
    return out


@pytest.fixture(scope="module")
def server(results: Path) -> Iterator[str]:
    """``distalign view RESULTS --port 0`` in a subprocess; its URL. Stopped with Ctrl-C."""
    command = [sys.executable, "-m", "distalign.cli", "view", str(results), "--n-boot", "50"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    found: list[str] = []

    def read_url() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if match := re.search(r"http://127\.0\.0\.1:\d+/", line):
                found.append(match.group(0))
                return

    reader = threading.Thread(target=read_url, daemon=True)
    reader.start()
    reader.join(timeout=120)
    if not found:
        process.kill()
        pytest.fail(f"the viewer printed no URL:\n{process.communicate()[1]}")
    yield found[0]
    process.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop, no traceback
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "stopped" in stderr, stderr


def get(url: str, **headers: str) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def count(page: str) -> str:
    match = re.search(r'id="count">([^<]*)<', page)
    assert match, page[:2000]
    return match.group(1)


def rows(page: str) -> list[tuple[str, str, str]]:
    """(row number, status, TV cell) of each item row of a table page."""
    body = page.split('<table class="items">', 1)[1].split("</table>", 1)[0]
    found = re.findall(
        r'<tr class="(\w+)"><td><a href="/item/(\d+)\?[^"]*">.*?<td class="num">([^<]*)</td></tr>',
        body,
        flags=re.S,
    )
    return [(number, status, tv) for status, number, tv in found]


# --- over HTTP -------------------------------------------------------------------------------


def test_every_page_has_a_strict_csp_and_is_read_only(server: str) -> None:
    for path, expected in (("", 200), ("item/0", 200), ("item/99999", 404), ("nope", 404)):
        status, headers, _ = get(server + path)
        assert status == expected, path
        lower = {k.lower(): v for k, v in headers.items()}
        assert lower["content-security-policy"].startswith(CSP), path
        assert "script-src" not in lower["content-security-policy"]  # no script at all
        assert lower["x-content-type-options"] == "nosniff"
    status, headers, css = get(server + "static/view.css")
    assert status == 200 and headers["content-type"].startswith("text/css") and "body" in css
    post = urllib.request.Request(server, data=b"x=1", method="POST")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(post, timeout=30)
    assert error.value.code == 405
    assert get(server, Host="attacker.example")[0] == 400  # DNS rebinding


def test_leaderboard_on_top(server: str) -> None:
    _, _, page = get(server)
    assert page.index("<h1>Leaderboard</h1>") < page.index('<h1 id="items">Items</h1>')
    assert "standard mode" in page and "logp" in page and "uniform" in page
    assert re.search(r"0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]", page)  # mean [low, high]


def test_filters(server: str) -> None:
    _, _, everything = get(server + "?size=200")
    total = int(count(everything).split()[0])
    assert total == len(rows(everything)) > 10
    _, _, failures = get(server + "?status=parse_failure")
    assert count(failures).startswith("1 matching item,")
    assert [status for _, status, _ in rows(failures)] == ["parse_failure"]
    reason = failure_pattern(DETAIL)
    _, _, by_reason = get(server + "?" + urllib.parse.urlencode({"reason": reason}))
    assert rows(by_reason) == rows(failures)
    _, _, logp = get(server + "?model=embedded&method=logp&steering=persona&dataset=opinionqa")
    assert count(logp).startswith("2 matching items")
    _, _, none = get(server + "?model=nobody")
    assert count(none) == "0 matching items" and "No item matches" in none


def test_pages_and_sorting(server: str) -> None:
    _, _, everything = get(server + "?size=200")
    total = len(rows(everything))
    first, second = (get(server + f"?size=10&page={n}")[2] for n in (1, 2))
    assert len(rows(first)) == 10 and len(rows(second)) == total - 10
    assert not {r[0] for r in rows(first)} & {r[0] for r in rows(second)}
    assert "page 2 of 2" in count(get(server + "?size=10&page=99")[2])  # clamped
    assert 'rel="next"' in first and 'rel="next"' not in second
    for sort, descending in (("tv", False), ("-tv", True)):
        _, _, page = get(server + f"?size=200&sort={sort}")
        values = [float(tv) for _, _, tv in rows(page) if tv != "–"]
        assert values == sorted(values, reverse=descending) and len(values) == total - 1
        assert rows(page)[-1][2] == "–"  # the unscored item sorts last either way


def test_item_page_shows_prompt_reply_chart_and_metrics(server: str) -> None:
    _, _, logp = get(server + "?method=logp&model=embedded")
    number = rows(logp)[0][0]
    _, _, page = get(server + f"item/{number}")
    assert "the exact messages sent, as stored in the results" in page
    assert '<div class="role">system</div>' in page and '<div class="role">user</div>' in page
    assert "<svg" in page and page.count('fill="#3b6fb6"') >= 3  # predicted bars (+ legend)
    assert re.search(r"<title>A\. [^<]+</title>", page)  # option texts on the bars
    for label in ("TV", "JS", "W1", "tokens", "cost (USD)"):
        assert f"<th>{label}</th>" in page
    assert "No text reply: Log-p reads the next-token probabilities." in page


def test_hostile_text_is_escaped(server: str) -> None:
    _, _, failures = get(server + "?status=parse_failure")
    number = rows(failures)[0][0]
    _, _, page = get(server + f"item/{number}")
    assert HOSTILE not in page and "<script" not in page.lower()
    assert re.search(r"<img[^>]*onerror", page) is None
    assert str(escape(HOSTILE)) in page  # the raw reply, shown as text
    assert str(escape(DETAIL)) in page  # the parse detail


def test_a_prompt_not_stored_is_rebuilt_and_says_so(results: Path, tmp_path: Path) -> None:
    from distalign.view.queries import Query, ViewData

    copy = tmp_path / "run"
    shutil.copytree(results, copy)
    items = pd.read_parquet(copy / "items.parquet")
    stored = items.loc[items["method"] == "logp", "prompt"].iloc[0]
    items.assign(prompt=None).to_parquet(copy / "items.parquet", index=False)
    data = ViewData([copy], n_boot=20)
    row = data.page(Query.parse({"method": "logp", "model": "embedded"})).rows[0]["row"]
    item = data.item(row)
    assert item is not None and item["prompt_note"].startswith("not stored in the results: rebuilt")
    assert "Democrats" in item["messages"][0]["content"]
    assert json.loads(stored)[-1]["content"] in item["messages"][0]["content"]


def test_view_needs_existing_folders_and_its_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(app, ["view", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "not found" in result.output
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name)
    )
    result = runner.invoke(app, ["view", str(tmp_path)])
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == "error: distalign view needs uvicorn: pip install 'distalign[view]'"
    )


# --- in a real browser -----------------------------------------------------------------------


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail("headless Chromium not found: install it with `apt-get install -y chromium`")


def browse(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        *args, url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Refused" in line]
    assert not console, "console messages (a CSP violation?):\n" + "\n".join(console)
    return done


def test_browser_filters_to_parse_failures_and_opens_the_item(server: str, tmp_path: Path) -> None:
    profile = tmp_path / "chromium-profile"
    artifacts = REPO_ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    listing = browse(server + "?status=parse_failure", profile, "--dump-dom").stdout
    assert count(listing).startswith("1 matching item,")
    link = re.search(r'<a href="(/item/\d+\?[^"]*)">', listing)
    assert link, listing
    item_url = server.rstrip("/") + html.unescape(link.group(1))
    dom = browse(item_url, profile, "--dump-dom").stdout
    title = re.search(r"<title>(.*?)</title>", dom, flags=re.S)
    assert title and "pwned" not in title.group(1)  # nothing ran
    assert "<script" not in dom.lower() and re.search(r"<img[^>]*onerror", dom) is None
    assert html.escape(HOSTILE, quote=False) in dom  # shown as text
    for name, url in (("view.png", server), ("view-item.png", item_url)):
        shot = artifacts / name
        shot.unlink(missing_ok=True)
        browse(url, profile, "--window-size=1280,1400", f"--screenshot={shot}")
        assert shot.stat().st_size > 20_000, f"the screenshot {name} is (nearly) empty"
