"""Consistency audits that every solver fills and every run reports.

An :class:`Audit` is a list of checks (name, value, tolerance, passed): energy balance,
non-negative dissipation, Hill–Mandel residual, mass conservation, Newton rate, ...  It prints in
the run summary, goes into the HDF5 output (``write_h5``) and the JSON summary (``as_dict``).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Literal


@dataclass
class Check:
    name: str
    value: float
    tolerance: float
    passed: bool
    relation: str = "<="
    note: str = ""


@dataclass
class Audit:
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, value: float, tolerance: float,
            relation: Literal["<=", ">=", "abs<="] = "abs<=", note: str = "") -> Check:
        """Record ``value`` against ``tolerance``: ``abs<=`` means ``|value| <= tol``,
        ``>=`` means ``value >= -tol`` (e.g. dissipation ≥ 0 up to round-off), ``<=`` means
        ``value <= tol``."""
        v = float(value)
        if relation == "abs<=":
            ok = abs(v) <= tolerance
        elif relation == ">=":
            ok = v >= -tolerance
        else:
            ok = v <= tolerance
        ok = bool(ok) and math.isfinite(v)
        c = Check(name, v, float(tolerance), ok, relation, note)
        self.checks.append(c)
        return c

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        if not self.checks:
            return "audit: (no checks)"
        w = max(len(c.name) for c in self.checks)
        rows = [f"audit: {sum(c.passed for c in self.checks)}/{len(self.checks)} checks passed"]
        for c in self.checks:
            rel = {"abs<=": "|x| <=", ">=": "x >= -", "<=": "x <="}[c.relation]
            rows.append(f"  {'ok  ' if c.passed else 'FAIL'} {c.name:<{w}}  {c.value: .3e}  ({rel} {c.tolerance:.1e})"
                        + (f"  {c.note}" if c.note else ""))
        return "\n".join(rows)

    def as_dict(self) -> dict:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}

    def write_h5(self, f, group: str = "audit") -> None:
        """Store as attributes/datasets of ``group`` (collective: call on every rank)."""
        g = f.require_group(group)
        g.attrs["passed"] = self.passed
        g.attrs["json"] = json.dumps(self.as_dict())
