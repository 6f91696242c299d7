"""How the report writes numbers and p-values."""
from __future__ import annotations

import math


def number(value, digits: int = 4, sign: bool = False) -> str:
    """``value`` to ``digits`` decimals (with its sign, ``sign``); "n/a" for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def p_value(p: float) -> str:
    """``p=0.0123``, or ``p < 0.0001`` where four digits would print zero."""
    return "p < 0.0001" if p is not None and not math.isnan(p) and p < 1e-4 else f"p={number(p, 4)}"
