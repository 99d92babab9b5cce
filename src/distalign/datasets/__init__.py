"""Dataset registry: reference datasets by name, or a user's own file by path.

>>> from distalign.datasets import load_dataset
>>> ds = load_dataset("opinionqa")                 # data dir from $DISTALIGN_DATA or cache
>>> ds = load_dataset("my_survey.csv")             # a user file in the long format

Reference loaders register themselves with :func:`register_dataset`; they receive the
resolved data directory and return a :class:`~distalign.data.Dataset`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from distalign.data import Dataset
from distalign.datasets.location import (
    ChecksumError,
    DataNotFoundError,
    DownloadError,
    resolve_data_dir,
)
from distalign.datasets.user import USER_SUFFIXES, DatasetError, load_user_dataset
from distalign.errors import UnknownNameError

__all__ = [
    "ChecksumError",
    "DataNotFoundError",
    "DatasetError",
    "DownloadError",
    "Loader",
    "UnknownDatasetError",
    "available_datasets",
    "load_dataset",
    "register_dataset",
]

Loader = Callable[[Path], Dataset]


class UnknownDatasetError(UnknownNameError):
    """A name that is neither a registered dataset nor a dataset file."""


@dataclass(frozen=True)
class _Entry:
    loader: Loader
    files: tuple[str, ...]


_REGISTRY: dict[str, _Entry] = {}


def register_dataset(name: str, *, files: Sequence[str] = ()) -> Callable[[Loader], Loader]:
    """Decorator registering ``loader(data_dir) -> Dataset`` under ``name``.

    ``files`` (relative to the data directory) are checked before the loader runs, so a
    missing download gives a :class:`DataNotFoundError` with instructions, not a bare
    ``FileNotFoundError``.
    """

    def decorate(loader: Loader) -> Loader:
        if name in _REGISTRY and _REGISTRY[name].loader is not loader:
            raise ValueError(f"dataset {name!r} is already registered")
        _REGISTRY[name] = _Entry(loader, tuple(files))
        return loader

    return decorate


def available_datasets() -> list[str]:
    _register_builtins()
    return sorted(_REGISTRY)


def load_dataset(name_or_path: str | Path, data_dir: str | Path | None = None) -> Dataset:
    """Load a registered dataset by name, or a user file (CSV, JSONL, Parquet) by path.

    A registered name wins over a file of the same name in the working directory; pass a
    :class:`~pathlib.Path` (or ``./name``) to force the file.
    """
    _register_builtins()
    if isinstance(name_or_path, str) and name_or_path in _REGISTRY:
        entry = _REGISTRY[name_or_path]
        return entry.loader(resolve_data_dir(data_dir, required=entry.files))
    if isinstance(name_or_path, Path) or _looks_like_path(name_or_path):
        return load_user_dataset(Path(name_or_path))
    raise UnknownDatasetError(_unknown_message(name_or_path))


def _looks_like_path(text: str) -> bool:
    path = Path(text)
    return path.exists() or path.suffix.lower() in USER_SUFFIXES or "/" in text or "\\" in text


def _unknown_message(name: str) -> str:
    known = sorted(_REGISTRY)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"unknown dataset {name!r}.{hint} Known datasets: {', '.join(known)}; "
        "or give the path of a .csv, .jsonl or .parquet file."
    )


def _register_builtins() -> None:
    # Imported lazily: the loaders' modules import register_dataset from this package.
    import distalign.datasets.globalvalues_all  # noqa: F401
    import distalign.datasets.opinionqa500  # noqa: F401
    import distalign.datasets.reference  # noqa: F401
