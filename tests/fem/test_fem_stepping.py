"""The load-stepping driver (hpcmsm.fem.stepping.step_load) on a scripted problem: schedule,
cut-back, regrowth, exact landing on lam_end, partial runs, failure; no MPI needed."""
import pytest

from hpcmsm.errors import ConvergenceError, InputError
from hpcmsm.fem.stepping import step_load


class Scripted:
    """Converges iff the increment is at most ``max_inc``; counts commits."""

    def __init__(self, max_inc=1.0, lam=0.0):
        self.lam, self.history, self.max_inc = lam, [], max_inc
        self.tried, self.committed = [], []

    def try_step(self, target):
        self.tried.append(target)
        ok = abs(target - self.lam) <= self.max_inc + 1e-15
        return ok, 3, "" if ok else "too big"

    def commit(self, target):
        self.committed.append(target)
        self.lam = target


def test_equal_steps_land_exactly():
    p = Scripted()
    step_load(p, 3, 1.0)
    assert p.committed[-1] == 1.0 and len(p.committed) == 3
    assert p.committed == pytest.approx([1 / 3, 2 / 3, 1.0], abs=1e-15)
    assert [r["cutbacks"] for r in p.history] == [0, 0, 0]


def test_cutback_then_regrowth():
    p = Scripted(max_inc=0.3)
    logs = []
    step_load(p, 1, 1.0, log=logs.append)
    # 1.0 fails, 0.5 fails, 0.25 ok; then 0.5 (doubled) fails, 0.25 ok, ...
    assert p.tried[:3] == [1.0, 0.5, 0.25]
    assert p.committed == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert p.history[0]["cutbacks"] == 2
    assert any("cutting the increment" in m for m in logs)


def test_unloading_and_partial_runs():
    p = Scripted(lam=1.0)
    seen = []
    step_load(p, 4, 0.0, max_steps=2, callback=lambda prob, rec: seen.append(rec["lam"]))
    assert seen == pytest.approx([0.75, 0.5]) and p.lam == pytest.approx(0.5)
    step_load(p, 2, 0.0)                  # the rest, from the committed state
    assert p.lam == 0.0 and len(p.history) == 4


def test_failure_after_max_cuts():
    p = Scripted(max_inc=0.01)
    with pytest.raises(ConvergenceError, match="failed after 3 cut-backs: too big"):
        step_load(p, 1, 1.0, max_cuts=3)
    assert p.committed == [] and p.lam == 0.0
    with pytest.raises(ConvergenceError):
        step_load(Scripted(max_inc=1e-9), 1, 1.0, max_cuts=100, min_step=1e-3)
    with pytest.raises(InputError):
        step_load(Scripted(), 0, 1.0)
