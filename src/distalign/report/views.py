"""Views for the HTML template: tables, run manifests and sampled items as plain strings."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from distalign.formatting import fmt
from distalign.report.items import BASELINE, Source, display_name
from distalign.report.lookup import DatasetLookup, messages_text
from distalign.report.tables import ReportTable
from distalign.results import Status

MAX_TEXT = 6000  # characters of one reply or prompt shown; the rest is cut with a note


def table_view(table: ReportTable) -> dict[str, Any]:
    frame, columns = table.shown_frame, table.shown
    numeric = [c in frame and bool(pd.api.types.is_numeric_dtype(frame[c])) for c in columns]
    rows = [[fmt(row[c]) for c in columns] for _, row in frame.iterrows()]
    return {
        "name": table.name,
        "title": table.title,
        "note": table.note,
        "columns": columns,
        "numeric": numeric,
        "rows": rows,
        "collapsed": table.collapsed,
    }


MANIFEST_FACTS = (
    "kind",
    "mode",
    "prompt_mode",
    "created",
    "distalign_version",
    "template_version",
    "python",
    "machine",
    "seed",
    "seeds",
    "config_sha256",
    "data_dir",
    "source",
)


def source_view(source: Source) -> dict[str, Any]:
    manifest = source.manifest
    facts = [(k, _short(manifest[k])) for k in MANIFEST_FACTS if k in manifest]
    facts.append(("models", ", ".join(_models(manifest)) or "(see items)"))
    return {
        "path": str(source.path),
        "modes": ", ".join(source.modes),
        "facts": facts,
        "json": json.dumps(manifest, indent=2, default=str, sort_keys=True),
    }


def _models(manifest: dict[str, Any]) -> list[str]:
    identity = manifest.get("model_identity") or {}
    if isinstance(identity, dict) and "backend" in identity:  # one model (older manifests)
        identity = {identity.get("model", "?"): identity}
    names = [
        f"{name} ({info.get('model', '')}, {info.get('runtime', info.get('backend', ''))})"
        if isinstance(info, dict)
        else str(name)
        for name, info in identity.items()
    ]
    configured = manifest.get("config", {}).get("models", [])
    return names or [str(m) for m in configured]


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:200] + "…"


def sample_views(
    items: pd.DataFrame, lookup: DatasetLookup, per_config: int, seed: int
) -> list[dict[str, Any]]:
    """A few items per (mode, model, method, steering), failures first, seeded."""
    views = []
    keys = ["mode", "model", "method", "steering"]
    models = items[items["model"] != BASELINE]
    for key, part in models.groupby(keys, sort=True):
        mode, model, method, steering = (str(k) for k in key)
        failures = int((part["status"].astype(str) != Status.OK).sum())
        views.append(
            {
                "label": f"{display_name(model)} · {method} · {steering} [{mode}]",
                "n_items": len(part),
                "n_failures": failures,
                "items": [_item_view(r, lookup) for _, r in _pick(part, per_config, seed)],
            }
        )
    return views


def _pick(part: pd.DataFrame, k: int, seed: int) -> Iterable[tuple[Any, pd.Series]]:
    bad = part[part["status"].astype(str) != Status.OK]
    good = part[part["status"].astype(str) == Status.OK]
    n_bad = min(len(bad), max(1, k // 3)) if k else 0
    picked = pd.concat(
        [
            bad.sample(n_bad, random_state=seed),
            good.sample(min(len(good), k - n_bad), random_state=seed),
        ]
    )
    return picked.iterrows()


def _item_view(row: pd.Series, lookup: DatasetLookup) -> dict[str, Any]:
    source = str(row.get("source", ""))
    question = lookup.question(source, str(row["dataset"]), str(row["question_id"]))
    text = row.get("question_text") if "question_text" in row else None
    if text is None and question is not None:
        text = question.text
    prompt = row.get("prompt") if "prompt" in row else None
    rebuilt = prompt is None
    if rebuilt:
        prompt = lookup.prompt(source, row)
    return {
        "where": f"{row['dataset']} · {row['group']} · {row['question_id']}",
        "status": str(row["status"]),
        "tv": fmt(row.get("tv")),
        "question": _clip(text),
        "options": _options(row, question),
        "prompt": _clip(messages_text(prompt) if prompt is not None else None),
        "prompt_rebuilt": rebuilt and prompt is not None,
        "raw": _clip(_raw_text(row.get("raw"))),
        "detail": _clip(_detail(row.get("detail"))),
    }


def _options(row: pd.Series, question: Any) -> list[tuple[str, str, str, str]]:
    letters = list(row["letters"]) if row["letters"] is not None else []
    pred = list(row["pred"]) if row["pred"] is not None else []
    truth = list(row["truth"]) if row["truth"] is not None else []
    texts = list(question.options) if question is not None else []
    return [
        (
            letter,
            texts[i] if i < len(texts) else "",
            fmt(float(pred[i])) if i < len(pred) else "–",
            fmt(float(truth[i])) if i < len(truth) else "–",
        )
        for i, letter in enumerate(letters)
    ]


def _detail(value: Any) -> str | None:
    """The parse detail without the leading "; " that results of earlier versions carry
    when the parser had nothing to say ("; attempts=1")."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    while text.startswith(";"):
        text = text[1:].lstrip()
    return text or None


def _raw_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _clip(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value)
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"\n… [{len(text) - MAX_TEXT} more characters]"
