"""Shared helpers of the FE² driver tests: an input from a base table with per-test overrides,
and the summary's history by column."""
from __future__ import annotations

import numpy as np

from hpcmsm.config import from_dict
from hpcmsm.fe2.inputs import FE2Input


def fe2_input(base: dict, over: dict) -> FE2Input:
    """FE2Input of the table ``base`` with each section of ``over`` merged into it (one level deep)."""
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v}
    return from_dict(FE2Input, base)


def history(summary: dict) -> dict:
    """The summary's ``history`` rows as {column name: values over the steps}."""
    H = np.array(summary["history"])
    return {c: H[:, i] for i, c in enumerate(summary["history_columns"])}
