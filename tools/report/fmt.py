"""How the report writes numbers; anything the run did not produce reads NOT_MEASURED."""

from __future__ import annotations

NOT_MEASURED = "not measured in this run"


def fmt_int(value: int | None) -> str:
    return NOT_MEASURED if value is None else f"{value:,}"


def fmt_s(value: float | None) -> str:
    return NOT_MEASURED if value is None else f"{value:.1f} s"


def fmt_ms(value: float | None) -> str:
    return NOT_MEASURED if value is None else f"{value:,.0f} ms"


def fmt_rate(value: float | None) -> str:
    return NOT_MEASURED if value is None else f"{value:,.1f}/s"
