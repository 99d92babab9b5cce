"""Data-dir resolution and the checksum-verified download (never touches the network)."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distalign.cli.data import data_app
from distalign.datasets import load_dataset, location
from distalign.datasets.location import (
    ChecksumError,
    DataNotFoundError,
    DownloadError,
    download,
    resolve_data_dir,
)

FILES = {"data/a.json": b'{"a": 1}\n', "data/sub/b.csv": b"x,y\n1,2\n"}
TABLE = {name: hashlib.sha256(content).hexdigest() for name, content in FILES.items()}


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $DISTALIGN_DATA, and a user cache inside tmp_path (platformdirs honours XDG)."""
    monkeypatch.delenv(location.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def _with_files(folder: Path, names: list[str]) -> Path:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("{}")
    return folder


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/archive.tar.gz"


def _tarball(path: Path, files: dict[str, bytes], top: str = "repo-abc123") -> str:
    with tarfile.open(path, "w:gz") as archive:
        for name, content in files.items():
            member = tarfile.TarInfo(f"{top}/{name}" if top else name)
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))
    return path.as_uri()


# ----------------------------------------------------------------------------- resolution


def test_default_cache_dir_follows_platformdirs(isolated: Path) -> None:
    assert location.default_cache_dir() == isolated / "cache" / "distalign" / "reference"


def test_precedence_explicit_then_env_then_cache(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["x/f.json"]
    explicit = _with_files(isolated / "explicit", names)
    env = _with_files(isolated / "env", names)
    cache = _with_files(location.default_cache_dir(), names)
    assert resolve_data_dir(None, names) == cache
    monkeypatch.setenv(location.ENV_VAR, str(env))
    assert resolve_data_dir(None, names) == env
    assert resolve_data_dir(explicit, names) == explicit


def test_explicit_dir_without_files_does_not_fall_back(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["x/f.json", "x/g.json"]
    env = _with_files(isolated / "env", names)
    monkeypatch.setenv(location.ENV_VAR, str(env))
    empty = isolated / "empty"
    with pytest.raises(DataNotFoundError) as caught:
        resolve_data_dir(empty, names)
    message = str(caught.value)
    assert str(empty) in message and "--data-dir" in message
    assert "x/f.json" in message and "x/g.json" in message
    assert "DISTALIGN_DATA" in message and "distalign data download" in message


def test_env_dir_without_files(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(location.ENV_VAR, str(isolated / "nowhere"))
    with pytest.raises(DataNotFoundError, match=r"taken from \$DISTALIGN_DATA"):
        resolve_data_dir(None, ["x/f.json"])


def test_empty_cache_by_default_names_cache_and_table_files(isolated: Path) -> None:
    with pytest.raises(DataNotFoundError) as caught:
        resolve_data_dir()
    message = str(caught.value)
    assert str(location.default_cache_dir()) in message
    assert "user cache" in message
    assert sorted(location.reference_checksums())[0] in message


def test_load_dataset_reports_missing_data(isolated: Path) -> None:
    with pytest.raises(DataNotFoundError, match="nytimes/POLPARTY_data.json"):
        load_dataset("nytimes", data_dir=isolated / "empty")


def test_unknown_name_suggests() -> None:
    with pytest.raises(ValueError, match="Did you mean 'opinionqa'"):
        load_dataset("opinonqa")


def test_checksum_table_lists_only_loader_files() -> None:
    from distalign.datasets import reference

    read = {
        *reference.OPINIONQA_FILES,
        *reference.NYTIMES_FILES,
        *reference.NYT_INDIVIDUAL_FILES,
        *reference.GLOBALVALUES_FILES,
    }
    table = location.reference_checksums()
    # the loaders' files, plus the paper's raw outputs that `import-reference` reads
    assert read <= set(table)
    assert {p for p in table if p not in read} == {
        p for p in table if p.startswith(("results/", "inputs/"))
    }
    assert any(p.startswith("results/opinionqa/express_distribution/") for p in table)
    assert all(len(digest) == 64 for digest in table.values())


# ----------------------------------------------------------------------------- download


def test_offline_download_fails_clearly(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        download(tmp_path / "dest", url=_closed_port_url(), checksums=TABLE, timeout=5)
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "could not download" in message
    assert "--data-dir" in message and "DISTALIGN_DATA" in message
    assert not any((tmp_path / "dest").rglob("*.json"))


def test_download_installs_verified_files(tmp_path: Path) -> None:
    url = _tarball(tmp_path / "repo.tar.gz", {**FILES, "data/unwanted.txt": b"skip me"})
    dest = download(tmp_path / "dest", url=url, checksums=TABLE)
    assert dest == tmp_path / "dest"
    for name, content in FILES.items():
        assert (dest / name).read_bytes() == content
    installed = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert installed == sorted(FILES)  # no unwanted files, no staging left behind


def test_download_checksum_mismatch_installs_nothing(tmp_path: Path) -> None:
    tampered = {**FILES, "data/sub/b.csv": b"x,y\n1,3\n"}
    url = _tarball(tmp_path / "repo.tar.gz", tampered)
    with pytest.raises(ChecksumError, match="data/sub/b.csv") as caught:
        download(tmp_path / "dest", url=url, checksums=TABLE)
    assert "data/a.json" not in str(caught.value)
    assert not any(p.is_file() for p in (tmp_path / "dest").rglob("*"))


def test_download_missing_member(tmp_path: Path) -> None:
    url = _tarball(tmp_path / "repo.tar.gz", {"data/a.json": FILES["data/a.json"]})
    with pytest.raises(DownloadError, match="lacks expected files: data/sub/b.csv"):
        download(tmp_path / "dest", url=url, checksums=TABLE)


def test_download_ignores_escaping_members(tmp_path: Path) -> None:
    hostile = {**FILES, "../../escaped.txt": b"bad", "data/../../up.txt": b"bad"}
    url = _tarball(tmp_path / "repo.tar.gz", hostile)
    download(tmp_path / "deep" / "dest", url=url, checksums=TABLE)
    assert not list(tmp_path.rglob("escaped.txt")) and not list(tmp_path.rglob("up.txt"))


def test_download_corrupt_archive(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_bytes(b"this is not gzip")
    with pytest.raises(DownloadError, match="unreadable"):
        download(tmp_path / "dest", url=bogus.as_uri(), checksums=TABLE)


def test_cli_download_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(location, "ARCHIVE_URL", _closed_port_url())
    result = CliRunner().invoke(data_app, ["download", "--dest", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert "could not download" in result.output and "--data-dir" in result.output
