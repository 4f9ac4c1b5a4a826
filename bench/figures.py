"""The summary figures every benchmark reports, in one place so the modules that time things import one way."""
from __future__ import annotations

import json
from pathlib import Path


def percentile(values, q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 2)


def timing(values_ms) -> dict:
    return {"p50_ms": percentile(values_ms, 50), "p95_ms": percentile(values_ms, 95), "n": len(values_ms)}


def emit(document: dict, out: str | None = None) -> None:
    """Print a benchmark's JSON document, and write it to `out` too when given."""
    text = json.dumps(document, indent=2)
    print(text)
    if out:
        Path(out).write_text(text + "\n")
