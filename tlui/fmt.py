"""Display text the pages share: numbers and seconds, Plotly labels.

One owner for each small rule the pages used to restate in their own copy:

- Numbers. ``MISSING`` ("–") stands for a missing value everywhere. ``number``: an
  objective value or a parameter in a sentence (four decimals; scientific below
  0.01); ``cell``: a cell of a table that mixes kinds of values (four significant
  digits; scientific when tiny or huge; booleans as yes/no); ``fixed``: a given
  number of decimals; ``pct``: a fraction as a percentage ("83.3 %"); ``seconds``:
  a duration ("42 s"); ``finite``: a value as a float, or None where a chart leaves a gap.
- ``plot_text``: user text for a Plotly title, legend or hover label. Plotly renders
  a little HTML there (``<b>``, ``<br>``), so the text is HTML-escaped to show as typed.

Markdown escaping is ``tlui.common.md_escape``; the text these functions return
holds no Markdown of its own. Banners (flash messages) are ``tlui.place``'s.
"""

from __future__ import annotations

import html
import math
import numbers
from typing import Any

__all__ = ["MISSING", "number", "cell", "fixed", "pct", "seconds", "finite", "plot_text"]

MISSING = "–"  # a value that is missing, not a number, or not finite


# ----------------------------------------------------------------- numbers
def finite(v: Any) -> float | None:
    """``v`` as a finite float; None when it is missing, not a number (a bool is not), NaN or infinite."""
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def number(v: Any) -> str:
    """An objective value or a parameter in a sentence: 0.8123 -> "0.8123", 0.0003 -> "3.00e-04",
    12 -> "12", None or NaN -> ``MISSING``; anything else as ``str``."""
    if _nan(v):
        return MISSING
    if isinstance(v, float):
        return f"{v:.2e}" if v != 0 and abs(v) < 1e-2 else f"{v:.4f}"
    return str(v)


def cell(v: Any) -> str:
    """A table cell that mixes kinds of values: 0.8123 -> "0.8123", 0.0003 -> "3.000e-04",
    True -> "yes", None or NaN -> ``MISSING``; anything else as ``str``."""
    if _nan(v):
        return MISSING
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3e}" if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5) else f"{v:.4g}"
    return str(v)


def fixed(v: Any, digits: int, missing: str = MISSING) -> str:
    """``v`` with ``digits`` decimals; ``missing`` when it is not a finite number."""
    f = finite(v)
    return missing if f is None else f"{f:.{digits}f}"


def pct(v: Any, digits: int = 1) -> str:
    """A fraction as a percentage: 0.8333 -> "83.3 %"; ``MISSING`` when it is not a finite number."""
    f = finite(v)
    return MISSING if f is None else f"{100 * f:.{digits}f} %"


def seconds(v: Any, digits: int = 0) -> str:
    """A duration in seconds: 41.6 -> "42 s"; ``MISSING`` when it is not a finite number."""
    f = finite(v)
    return MISSING if f is None else f"{f:.{digits}f} s"


# ------------------------------------------------------------------ Plotly
def plot_text(s: object) -> str:
    """``s`` as Plotly label text that shows literally (Plotly renders a little HTML in labels)."""
    return html.escape(str(s), quote=False)
