"""Where the reference data lives, and how to fetch it.

The data directory is, in order of precedence:

1. an explicit path (the CLI's ``--data-dir``);
2. the environment variable ``DISTALIGN_DATA``;
3. the user cache, ``platformdirs.user_cache_dir("distalign")/reference``, which is where
   ``distalign data download`` puts the files.

The first of these that is *set* is used; this is not a search path. A set but wrong
directory raises :class:`DataNotFoundError` rather than silently falling back to another copy.

:func:`download` fetches the paper repository's archive at a pinned commit, keeps only the
files the loaders read, and checks each against the SHA-256 table in
``reference_sha256.json`` (generated from the reference copy's ``SHA256SUMS``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path, PurePosixPath

from platformdirs import user_cache_dir

from distalign.errors import DistalignError

ENV_VAR = "DISTALIGN_DATA"
REPOSITORY = "nicolemeister/benchmarking-distributional-alignment"
COMMIT = "36869b56b214b5ddce13dc234d62b4cbce3706cd"
ARCHIVE_URL = f"https://codeload.github.com/{REPOSITORY}/tar.gz/{COMMIT}"
CHECKSUM_FILE = "reference_sha256.json"
DEFAULT_TIMEOUT_S = 60.0


class DataNotFoundError(DistalignError):
    """The data directory does not hold the files a loader needs."""


class DownloadError(DistalignError):
    """The reference archive could not be fetched or did not hold the expected files."""


class ChecksumError(DownloadError):
    """A fetched file's SHA-256 differs from the pinned table."""


def reference_checksums() -> dict[str, str]:
    """The pinned ``{relative path: sha256}`` table of the files the loaders read."""
    text = resources.files("distalign.datasets").joinpath(CHECKSUM_FILE).read_text("utf-8")
    table: dict[str, str] = json.loads(text)["sha256"]
    return table


def default_cache_dir() -> Path:
    return Path(user_cache_dir("distalign")) / "reference"


def resolve_data_dir(
    explicit: str | Path | None = None, required: Iterable[str] | None = None
) -> Path:
    """The data directory to use; raises :class:`DataNotFoundError` if files are missing.

    ``required`` lists paths relative to the directory; by default, every file in the
    checksum table.
    """
    data_dir, origin = _chosen_dir(explicit)
    needed = list(required) if required is not None else sorted(reference_checksums())
    missing = missing_files(data_dir, needed)
    if missing:
        raise DataNotFoundError(_not_found_message(data_dir, origin, missing))
    return data_dir


def chosen_data_dir(explicit: str | Path | None = None) -> Path:
    """The data directory the precedence above picks, whether or not it holds the files."""
    return _chosen_dir(explicit)[0]


def missing_files(data_dir: Path, required: Iterable[str]) -> list[str]:
    return [name for name in required if not (data_dir / name).is_file()]


def _chosen_dir(explicit: str | Path | None) -> tuple[Path, str]:
    if explicit is not None:
        return Path(explicit).expanduser(), "--data-dir"
    from_env = os.environ.get(ENV_VAR, "").strip()
    if from_env:
        return Path(from_env).expanduser(), f"${ENV_VAR}"
    return default_cache_dir(), "the user cache (no --data-dir given and $DISTALIGN_DATA unset)"


def _not_found_message(data_dir: Path, origin: str, missing: list[str]) -> str:
    shown = "\n".join(f"  {name}" for name in missing[:5])
    more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
    return (
        f"reference data not found in {data_dir} (taken from {origin}).\n"
        f"Missing files:\n{shown}{more}\n"
        "Fix it one of these ways:\n"
        "  * pass --data-dir PATH, where PATH holds opinions_qa/, nytimes/ and Global_Values/"
        " as in the paper repository;\n"
        f"  * set {ENV_VAR}=PATH;\n"
        f"  * run `distalign data download` to fetch the files into {default_cache_dir()}."
    )


def download(
    dest: str | Path | None = None,
    *,
    url: str | None = None,
    checksums: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Fetch the pinned archive and install the verified data files under ``dest``.

    ``dest`` defaults to the user cache, ``url`` to :data:`ARCHIVE_URL` (any URL urllib
    opens works, e.g. ``file://`` for a local copy of the archive). Nothing is installed in
    ``dest`` unless every file is present and matches its checksum. Returns ``dest``.
    """
    source = url if url is not None else ARCHIVE_URL
    target = Path(dest).expanduser() if dest is not None else default_cache_dir()
    table = dict(checksums) if checksums is not None else reference_checksums()
    target.mkdir(parents=True, exist_ok=True)
    # Stage next to the destination so the final moves stay on one file system.
    staging = Path(tempfile.mkdtemp(prefix=".distalign-download-", dir=target))
    try:
        _fetch_into(source, table, staging, timeout)
        _check_staged(staging, table)
        for name in table:
            final = target / name
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _fetch_into(url: str, table: Mapping[str, str], staging: Path, timeout: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            # Stream mode: the archive is never held in memory or on disk as a whole.
            with tarfile.open(fileobj=response, mode="r|gz") as archive:
                _extract_wanted(archive, table, staging)
    except urllib.error.HTTPError as err:
        raise DownloadError(f"downloading {url} failed: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(_offline_message(url, reason)) from err
    except (tarfile.TarError, EOFError, OSError, http.client.HTTPException) as err:
        raise DownloadError(f"the archive from {url} is unreadable: {err}") from err


def _offline_message(url: str, reason: object) -> str:
    return (
        f"could not download {url}: {reason}.\n"
        "If this machine is offline, copy the data files of the paper repository "
        f"{REPOSITORY} (commit {COMMIT}) from elsewhere and point distalign at that copy:\n"
        f"  pass --data-dir PATH or set {ENV_VAR}=PATH, where PATH holds opinions_qa/, "
        "nytimes/ and Global_Values/."
    )


def _extract_wanted(archive: tarfile.TarFile, table: Mapping[str, str], staging: Path) -> None:
    for member in archive:
        name = _repo_relative(member.name)
        # Only paths named in the table are written, so a hostile member name
        # ("../x", absolute paths, links) can never escape the staging folder.
        if name not in table or not member.isfile():
            continue
        source = archive.extractfile(member)
        if source is None:
            continue
        out = staging / name
        out.parent.mkdir(parents=True, exist_ok=True)
        with source, out.open("wb") as sink:
            shutil.copyfileobj(source, sink)


def _repo_relative(member_name: str) -> str:
    """Drop the archive's top folder (``<repo>-<commit>/``) from a member name."""
    parts = PurePosixPath(member_name).parts
    return "/".join(parts[1:])


def _check_staged(staging: Path, table: Mapping[str, str]) -> None:
    missing = [name for name in table if not (staging / name).is_file()]
    if missing:
        raise DownloadError(f"the archive lacks expected files: {', '.join(missing)}")
    bad = [name for name, digest in table.items() if sha256_of(staging / name) != digest]
    if bad:
        raise ChecksumError(
            "SHA-256 mismatch, nothing was installed. Files: " + ", ".join(sorted(bad))
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
