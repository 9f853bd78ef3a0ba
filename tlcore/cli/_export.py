"""``python -m tlcore export``'s report of the checks (``tlcore.export``): a table and loud warnings.

``print_checks(result)`` prints one row per format (size, its share of the reference file,
accuracy, top-1 agreement with the Keras model, largest probability difference,
single-image latency, verdict), then how it was measured, or why nothing was checked; every
warning goes to stderr as ``warning: ...``, in red on a terminal. A format that passed with its
agreement under its threshold (not significantly below it: ``tlcore.export.agreement_verdict``)
reads "ok (2 of 70 differ; within what 70 images can tell from 98 %)", in the table's plain
style. Shares are rounded so that a figure never looks better than it is (agreement and
accuracy down, size up).
``cli._train._cmd_export`` calls it and exits 1 when a check failed (the files are written).
"""

from __future__ import annotations

import math
import os
import sys
from typing import IO, Any

from tlcore.export import rule_text, verdict_text

__all__ = ["print_checks", "check_rows"]

RED, YELLOW, RESET = "\x1b[31m", "\x1b[33m", "\x1b[0m"


def _down(x: Any) -> str:
    return "-" if x is None else f"{math.floor(10000 * x) / 100:.2f} %"


def _up(x: Any) -> str:
    return "-" if x is None else f"{math.ceil(10 * x) / 10:.1f} %"


def _bytes(n: Any) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def check_rows(checks: dict[str, Any]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The table's header and rows (strings) from an export's ``checks`` section."""
    ref = "TFLITE F32" if checks.get("size_reference") == "tflite" else "KERAS FILE"
    head = ("FORMAT", "SIZE", f"% OF {ref}", "ACCURACY", "AGREEMENT", "MAX |ΔP|", "LATENCY", "CHECK")
    rows = []
    for fmt, c in (checks.get("formats") or {}).items():
        diff = c.get("max_abs_prob_diff")
        lat = c.get("latency_ms")
        rows.append((fmt, _bytes(c.get("bytes")), _up(c.get("size_pct")),
                     _down(c.get("accuracy")), _down(c.get("agreement")),
                     "-" if diff is None else f"{diff:.4f}", "-" if lat is None else f"{lat:.1f} ms", verdict_text(c)))
    return head, rows


def _colour(stream: IO[str], code: str, text: str) -> str:
    tty = hasattr(stream, "isatty") and stream.isatty() and not os.environ.get("NO_COLOR")
    return f"{code}{text}{RESET}" if tty else text


def print_checks(result: Any, *, out: IO[str] | None = None, err: IO[str] | None = None) -> None:
    """Print an ``ExportResult``'s checks as a table on ``out`` and its warnings on ``err``."""
    out = out or sys.stdout
    err = err or sys.stderr
    checks = result.checks or {}
    head, rows = check_rows(checks)
    if rows:
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        for r in [head, *rows]:
            line = "  ".join(c.ljust(w) if i in (0, 7) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
            print("  " + line.rstrip(), file=out)
    if checks.get("checked"):
        print(f"Checked on {checks['images']} {checks['split']} images against the run's Keras model; "
              f"latency: {checks.get('latency')}.", file=out)
        if rule := rule_text(checks):
            print(rule, file=out)
        if checks.get("note"):
            print(checks["note"], file=out)
    else:
        print(_colour(err, YELLOW, f"warning: nothing was checked against data: {checks.get('reason') or 'unknown'}. "
                      "Sizes and latency only."), file=err)
    rounding = ((result.model_card or {}).get("quantization") or {}).get("tflite_int8", {}).get("weight_rounding")
    if rounding:  # how the int8 weights were rounded (tlcore.quantize), and why not when it fell back
        done = (f": {rounding['layers']} convolution(s) on {rounding['images']} training images"
                if rounding.get("layers") else "")
        print(f"int8 weights: {rounding['method']}{done}." + (f" {rounding['note']}." if rounding.get("note") else ""),
              file=out)
    for w in result.warnings:
        print(_colour(err, RED, f"warning: {w}"), file=err)
