"""Expected errors on the command line: one ``error: ...`` line on stderr, exit code 2, no
traceback; ``--debug`` shows the traceback; Ctrl-C exits with 130; bugs keep their traceback.

Every error here is raised before a model loads: the runs name a small dataset and an output
folder, and the tests check that the folder was not even created.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from distalign.cli import app

runner = CliRunner()


def run_args(reference_dir: Path, out: Path, *extra: str) -> list[str]:
    """A cheap run: 1 NYT question, dry run; ``extra`` adds or overrides flags."""
    return [
        "run",
        "--data-dir",
        str(reference_dir),
        "-d",
        "nytimes",
        "--questions",
        "1",
        "-o",
        str(out),
        "--dry-run",
        *extra,
    ]


def assert_one_line_error(result: Any, *expected: str) -> str:
    """Exit code 2, ``error: ...`` on stderr, no traceback; returns the message."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    stderr = result.stderr.strip()
    assert stderr.startswith("error: "), stderr
    assert "Traceback" not in result.output and "╭" not in result.output, result.output
    for text in expected:
        assert text in stderr, (text, stderr)
    return stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----- the expected errors of `distalign run` --------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--method", "foo"], ["unknown method 'foo'", "logp"]),
        (["--method", "logp,verbalise"], ["unknown method 'verbalise'", "'verbalize'"]),
        (["-m", "nosuch:x"], ["unknown backend 'nosuch'", "Known backends:"]),
        (["-m", "embeded"], ["unknown backend 'embeded'", "Did you mean 'embedded'?"]),
        (["-d", "nosuchds"], ["unknown dataset 'nosuchds'", "Known datasets:"]),
        (["--group", "NOSUCH=x"], ["unknown group 'NOSUCH=x'", "valid groups:", "SEX=Male"]),
        (["--group", "SEX=Male,NOSUCH=x"], ["unknown group 'NOSUCH=x'", "valid groups:"]),
        (["--group", "Democrat"], ["ATTRIBUTE=value"]),
        (["--n", "0"], ["--n 0", "greater than or equal to 1"]),
        (["--questions", "0"], ["--questions 0", "greater than or equal to 1"]),
        (["--steering", "nudge"], ["--steering", "'persona'"]),
        (["--prompt-mode", "fancy"], ["--prompt-mode 'fancy'", "'standard' or 'paper'"]),
    ],
)
def test_run_errors_are_one_line_with_exit_code_2(
    tmp_path: Path, reference_dir: Path, extra: list[str], expected: list[str]
) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, run_args(reference_dir, out, *extra))
    message = assert_one_line_error(result, *expected)
    assert "\n" not in message
    assert "errors.pydantic.dev" not in message  # pydantic's own text is not shown
    assert not out.exists()  # failed before anything ran: no cache, no results


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("embedded:x", "takes no argument"),
        ("gguf:/nonexistent/model.gguf", "GGUF model file not found"),
        ("openai-compatible:no-url", "MODEL@URL"),
    ],
)
def test_spec_argument_errors_are_one_line(
    tmp_path: Path, reference_dir: Path, spec: str, expected: str
) -> None:
    """Raised when the backend is built (the runner's first step), before any model loads."""
    result = runner.invoke(app, run_args(reference_dir, tmp_path / "out", "-m", spec))
    assert "\n" not in assert_one_line_error(result, expected)


def test_an_existing_file_as_output_folder_fails_before_anything_runs(
    tmp_path: Path, reference_dir: Path
) -> None:
    out = tmp_path / "results.csv"
    out.write_text("keep me\n")
    result = runner.invoke(app, run_args(reference_dir, out))
    assert_one_line_error(result, "is a file", "-o/--out takes a folder")
    assert out.read_text() == "keep me\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_malformed_toml_names_the_file_and_line(tmp_path: Path, reference_dir: Path) -> None:
    config = write(tmp_path / "exp.toml", "questions = 1\nmethods = logp\n")
    result = runner.invoke(app, [*run_args(reference_dir, tmp_path / "o"), "--config", str(config)])
    assert_one_line_error(result, "exp.toml", "not valid TOML at line 2, column 11")
    write(config, 'methods = ["logp"\n')
    result = runner.invoke(app, [*run_args(reference_dir, tmp_path / "o"), "--config", str(config)])
    assert_one_line_error(result, "not valid TOML at the end of the file: Unclosed array")


def test_missing_config_file(tmp_path: Path, reference_dir: Path) -> None:
    config = tmp_path / "nope.toml"
    result = runner.invoke(app, [*run_args(reference_dir, tmp_path / "o"), "--config", str(config)])
    assert_one_line_error(result, "nope.toml", "not found")


def test_unknown_toml_key_suggests_the_setting(tmp_path: Path, reference_dir: Path) -> None:
    config = write(tmp_path / "exp.toml", "questoins = 3\n")
    result = runner.invoke(app, [*run_args(reference_dir, tmp_path / "o"), "--config", str(config)])
    assert_one_line_error(
        result, "unknown setting 'questoins'", "exp.toml", "Did you mean 'questions'?"
    )


def test_several_invalid_settings_get_one_line_each(tmp_path: Path, reference_dir: Path) -> None:
    config = write(tmp_path / "exp.toml", 'questoins = 3\nprompt_mode = "fancy"\n')
    args = [*run_args(reference_dir, tmp_path / "o"), "--config", str(config), "--n", "0"]
    result = runner.invoke(app, args)
    message = assert_one_line_error(result, "invalid run settings:")
    lines = message.splitlines()[1:]
    assert len(lines) == 3, message
    assert any("'questoins'" in line for line in lines)
    assert any(line.strip().startswith("prompt_mode = 'fancy'") for line in lines)
    assert any(line.strip().startswith("--n 0") for line in lines)


def test_unknown_backend_option_lists_the_valid_ones(tmp_path: Path, reference_dir: Path) -> None:
    config = write(tmp_path / "exp.toml", "backend_options = { foo = 1 }\n")
    out = tmp_path / "o"
    result = runner.invoke(app, [*run_args(reference_dir, out), "--config", str(config)])
    assert_one_line_error(result, "'embedded'", "no option 'foo'", "n_threads", "n_ctx")
    assert not out.exists()


def test_unreachable_server_is_one_line(tmp_path: Path, reference_dir: Path) -> None:
    spec = f"openai-compatible:m@http://127.0.0.1:{free_port()}/v1"
    result = runner.invoke(app, run_args(reference_dir, tmp_path / "o", "-m", spec))
    message = assert_one_line_error(result, "no server for 'm' answered", "start the server")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("spec", "variable"),
    [
        ("openai:gpt-4o", "OPENAI_API_KEY"),
        ("anthropic:claude-3-haiku-20240307", "ANTHROPIC_API_KEY"),
    ],
)
def test_missing_api_key_says_which_variable(
    tmp_path: Path,
    reference_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    variable: str,
) -> None:
    monkeypatch.delenv(variable, raising=False)
    result = runner.invoke(app, run_args(reference_dir, tmp_path / "o", "-m", spec))
    assert_one_line_error(result, "needs an API key", f"set the environment variable {variable}")


# ----- --debug, Ctrl-C and bugs -----------------------------------------------------------------


def test_debug_flag_and_variable_show_the_traceback(
    tmp_path: Path, reference_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distalign.errors import UnknownNameError

    args = run_args(reference_dir, tmp_path / "o", "--method", "foo")
    result = runner.invoke(app, ["--debug", *args])
    assert result.exit_code == 1
    assert isinstance(result.exception, UnknownNameError)
    monkeypatch.setenv("DISTALIGN_DEBUG", "1")
    result = runner.invoke(app, args)
    assert isinstance(result.exception, UnknownNameError)
    monkeypatch.setenv("DISTALIGN_DEBUG", "0")
    assert_one_line_error(runner.invoke(app, args), "unknown method 'foo'")


def test_ctrl_c_exits_130_with_a_resume_hint(
    tmp_path: Path, reference_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distalign.runner import Runner

    def interrupted(self: Runner) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Runner, "dry_run", interrupted)
    result = runner.invoke(app, run_args(reference_dir, tmp_path / "o"))
    assert result.exit_code == 130
    assert result.stderr.strip() == (
        "interrupted: completed calls are cached; rerun the same command to resume"
    )


def test_an_unexpected_error_keeps_its_traceback(
    tmp_path: Path, reference_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distalign.runner import Runner

    def broken(self: Runner) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Runner, "dry_run", broken)
    result = runner.invoke(app, run_args(reference_dir, tmp_path / "o"))
    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError)
    assert "error: " not in result.stderr


def distalign_script() -> Path:
    script = Path(sys.executable).with_name("distalign")
    assert script.exists(), f"the console script is not installed at {script}"
    return script


def test_the_installed_script_prints_no_traceback(tmp_path: Path, reference_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISTALIGN_DEBUG"}
    out = tmp_path / "o"
    args = [str(distalign_script()), *run_args(reference_dir, out, "--method", "foo")]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error: unknown method 'foo'")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()
    debug = subprocess.run(
        [args[0], "--debug", *args[1:]], capture_output=True, text=True, env=env, timeout=300
    )
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "unknown method 'foo'" in debug.stderr


# ----- the other commands ------------------------------------------------------------------------


def test_toy_unknown_model_goes_through_the_handler(tmp_path: Path) -> None:
    result = runner.invoke(app, ["toy", "coin", "-m", "embeded", "-o", str(tmp_path / "toy")])
    assert_one_line_error(result, "Did you mean 'embedded'?")


def test_import_reference_without_data_goes_through_the_handler(tmp_path: Path) -> None:
    missing = tmp_path / "no-data"
    result = runner.invoke(
        app, ["import-reference", "--data-dir", str(missing), "-o", str(tmp_path / "r")]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and str(missing) in result.stderr
    assert "Traceback" not in result.output


# ----- model specs: replicas and --threads -------------------------------------------------------


def test_model_flags_split_at_commas_but_keep_replica_urls() -> None:
    from distalign.cli.run import split_models

    replicas = "openai-compatible:m@http://127.0.0.1:1/v1,http://127.0.0.1:2/v1"
    assert split_models([replicas]) == [replicas]
    assert split_models([f"embedded, {replicas} ,gguf:/x.gguf"]) == [
        "embedded",
        replicas,
        "gguf:/x.gguf",
    ]
    assert split_models(["embedded", "HTTPS://a/v1"]) == ["embedded", "HTTPS://a/v1"]
    assert split_models(["a,,b"]) == ["a", "b"] and split_models(None) is None


def test_run_settings_keep_replicas_and_put_threads_apart(tmp_path: Path) -> None:
    from distalign.cli.run import build_run_config, run_settings

    replicas = "openai-compatible:m@http://127.0.0.1:1/v1,http://127.0.0.1:2/v1"
    config = write(tmp_path / "exp.toml", "n = 5\nbackend_options = { concurrency = 2 }\n")
    settings = run_settings(config, models=[f"{replicas},embedded"], threads=2, n=None)
    assert settings["models"] == [replicas, "embedded"]
    assert settings["threads"] == 2 and settings["n"] == 5
    assert settings["backend_options"] == {"concurrency": 2}  # threads are not in there
    run_config = build_run_config(settings)
    assert "n_threads" not in run_config.options_for(replicas)
    assert run_config.options_for("embedded")["n_threads"] == 2


class _ModelsHandler(http.server.BaseHTTPRequestHandler):
    """Answers GET /v1/models with one model "m": enough to build the backend for a dry run."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        body = json.dumps(
            {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "t"}]}
        ).encode()
        self.send_response(200 if self.path.endswith("/models") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[list[str]]:
    """Two tiny OpenAI-compatible servers (model listing only); yields their base URLs."""
    started = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ModelsHandler) for _ in (1, 2)]
    for server in started:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield [f"http://127.0.0.1:{s.server_address[1]}/v1" for s in started]
    for server in started:
        server.shutdown()
        server.server_close()


def test_replica_spec_works_on_the_command_line(
    tmp_path: Path, reference_dir: Path, servers: list[str]
) -> None:
    spec = f"openai-compatible:m@{servers[0]},{servers[1]}"  # the README's replica syntax
    result = runner.invoke(app, run_args(reference_dir, tmp_path / "o", "-m", spec))
    assert result.exit_code == 0, (result.output, result.exception)
    assert "nothing was sent" in result.output
    rows = [line for line in result.output.splitlines() if "logp" in line]
    assert len(rows) == 1 and "openai-compatible:m@" in rows[0]  # one model, two replicas


def test_threads_do_not_reach_an_api_model(
    tmp_path: Path, reference_dir: Path, servers: list[str]
) -> None:
    spec = f"openai-compatible:m@{servers[0]}"
    args = run_args(reference_dir, tmp_path / "o", "-m", spec, "--threads", "2")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    assert "nothing was sent" in result.output


# ----- the backend registry --------------------------------------------------------------------


def test_registry_errors_are_distalign_errors() -> None:
    from distalign.backends import BackendUnavailableError, get_backend
    from distalign.errors import ConfigError, UnknownNameError

    with pytest.raises(UnknownNameError, match="Did you mean 'embedded'"):
        get_backend("embeded")
    with pytest.raises(ConfigError, match="no option 'n_thread'.*Did you mean 'n_threads'"):
        get_backend("embedded", n_thread=1)  # caught before the model loads
    with pytest.raises(ConfigError, match="takes no argument"):
        get_backend("embedded:x")
    with pytest.raises(BackendUnavailableError, match="not found") as missing:
        get_backend("gguf:/nonexistent/model.gguf")
    assert isinstance(missing.value, FileNotFoundError)  # what callers caught before
    with pytest.raises(ConfigError, match="unknown server kind 'vlm'"):
        get_backend("openai-compatible:m@http://127.0.0.1:1/v1", server="vlm")
    with pytest.raises(ConfigError, match="has no option 'api_key'"):
        get_backend("openai-compatible:m@http://127.0.0.1:1/v1", api_key="sk-x")


def test_compatible_spec_errors_are_config_errors() -> None:
    from distalign.backends.openai_compat import check_url, parse_compatible_argument
    from distalign.errors import ConfigError

    with pytest.raises(ConfigError, match="MODEL@URL"):
        parse_compatible_argument("llama-3")
    with pytest.raises(ConfigError, match="credentials"):
        parse_compatible_argument("m@http://user:pw@host/v1")
    with pytest.raises(ConfigError, match="http://"):
        check_url("ftp://host/v1")


def test_an_unknown_keyword_raised_by_a_factory_becomes_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A factory whose backend class cannot be told from its annotation: the TypeError of the
    call itself is converted."""
    import distalign.backends as backends
    from distalign.errors import ConfigError

    class Fake:
        def __init__(self, *, size: int = 1) -> None:
            self.size = size

    def factory(argument: str, **options: Any):  # type: ignore[no-untyped-def]  # noqa: ANN202
        return Fake(**options)

    monkeypatch.setitem(backends._FACTORIES, "fake", factory)
    assert backends.get_backend("fake", size=2).size == 2  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="backend 'fake' has no option 'colour'"):
        backends.get_backend("fake", colour="red")
