"""The results table: each figure, its target when it has one, and whether the target was met."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field

CHECKS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
}


@dataclass
class Row:
    label: str
    value: float
    unit: str
    target: tuple[str, float] | None = None  # e.g. (">=", 0.7)

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        check, bound = self.target
        return "PASS" if CHECKS[check](self.value, bound) else "MISS"

    def cells(self) -> list[str]:
        target = f"{self.target[0]} {self.target[1]:g} {self.unit}".strip() if self.target else ""
        value = f"{self.value:,}" if isinstance(self.value, int) else f"{self.value:,.2f}"
        return [self.label, f"{value} {self.unit}".strip(), target, self.verdict]


@dataclass
class Report:
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)

    def render(self) -> str:
        header = ["measure", "value", "target", ""]
        table = [header, *(row.cells() for row in self.rows)]
        widths = [max(len(line[i]) for line in table) for i in range(len(header))]
        lines = [self.title, ""]
        for n, line in enumerate(table):
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        missed = [row.label for row in self.rows if row.verdict == "MISS"]
        checked = sum(1 for row in self.rows if row.target)
        lines += ["", f"{checked - len(missed)}/{checked} targets met"]
        lines += [f"  MISS: {label}" for label in missed]
        lines += ["", *self.notes] if self.notes else []
        return "\n".join(lines)
