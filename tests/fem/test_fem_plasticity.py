"""J2 plasticity in the FE solver: homogeneous uniaxial bar against the closed form, energy
audit (W_ext = stored + dissipation, dissipation ≥ 0) through load and unload, step cut-back
with state committed only on convergence.  Identical at 1, 2 and 3 ranks."""
import numpy as np
import pytest

from hpcmsm.errors import ConvergenceError

pytestmark = pytest.mark.mpi
E, NU, SY = 200e3, 0.3, 250.0
L = np.array([2.0, 1.0, 1.0])


def _bar(comm, mat, n=(4, 2, 2), **kw):
    from hpcmsm.fem import Dirichlet, ElasticityProblem, create_box

    mesh = create_box(comm, n, upper=L, cell="hexahedron")
    umax = 4 * SY / E * L[0]
    bcs = [Dirichlet("xmin", 0.0, [0]), Dirichlet("ymin", 0.0, [1]), Dirichlet("zmin", 0.0, [2]),
           Dirichlet("xmax", umax, [0])]
    return ElasticityProblem(mesh, mat, bcs, **kw), umax


@pytest.mark.parametrize("Hi,Hk", [(10e3, 0.0), (3e3, 7e3)])
def test_uniaxial_bar_matches_closed_form(comm, Hi, Hk):
    from hpcmsm.materials.j2 import J2Plasticity, uniaxial_closed_form

    prob, umax = _bar(comm, J2Plasticity(3, E, NU, SY, H_iso=Hi, H_kin=Hk))
    got, rates = [], []

    def cb(p, rec):
        got.append((rec["lam"], -p.reaction("xmin")[0]))
        r = p.residuals
        if len(r) >= 3:     # quadratic convergence: the last reduction is far below the previous
            rates.append(np.log(r[-1] / r[-2]) / np.log(r[-2] / r[-3]))
    prob.solve(8, callback=cb)
    lam, F = np.array(got).T
    sigma = F / (L[1] * L[2])
    ref = uniaxial_closed_form(lam * umax / L[0], E, SY, Hi, Hk)
    assert np.allclose(sigma, ref, rtol=1e-7)
    # Newton with the consistent tangent: few iterations per step
    assert max(r["newton_iterations"] for r in prob.history) <= 6
    assert rates and max(rates) > 1.7, rates
    a = prob.energy_audit()
    assert a.passed, a.summary()
    assert prob.energies["dissipation"] > 0
    # unload to zero force: dissipation keeps growing, balance still holds
    prob.solve(4, lam_end=0.3)
    a = prob.energy_audit()
    assert a.passed, a.summary()
    alpha = np.concatenate([g.state["alpha"] for g in prob.groups])
    assert np.allclose(alpha, alpha[0])                    # homogeneous state
    prob.destroy()


class _Fragile:
    """Wraps a material and fails (like a non-converged RVE) when a point's strain jumps by more
    than ``limit`` from its committed value; counts committed states."""

    kind = "small"

    def __init__(self, inner, limit):
        self.inner, self.limit, self.dim = inner, limit, inner.dim
        self.calls = 0

    def initial_state(self, nq):
        st = self.inner.initial_state(nq)
        st["commits"] = np.zeros(nq)
        return st

    def update(self, strain, state):
        self.calls += 1
        if np.abs(strain - state["eps"]).max(initial=0.0) > self.limit:
            raise ConvergenceError("increment too large")
        s, C, new = self.inner.update(strain, {k: v for k, v in state.items() if k != "commits"})
        new["commits"] = state["commits"] + 1
        return s, C, new

    def energy(self, strain, state):
        return self.inner.energy(strain, state)

    def dissipation_increment(self, strain, state, new):
        return self.inner.dissipation_increment(strain, state, new)


def test_cutback_and_commit_on_convergence(comm):
    from hpcmsm.materials.j2 import J2Plasticity, uniaxial_closed_form

    eps_end = 4 * SY / E
    prob, umax = _bar(comm, _Fragile(J2Plasticity(3, E, NU, SY, H_iso=5e3), limit=0.3 * eps_end))
    prob.solve(1)                  # one step is too big: must be cut to ≤ 0.3 of the range
    assert prob.history[0]["cutbacks"] >= 2
    assert abs(prob.lam - 1.0) < 1e-12
    commits = np.concatenate([g.state["commits"] for g in prob.groups])
    # one commit per accepted step, none from the failed attempts
    assert np.all(commits == len(prob.history))
    sigma = -prob.reaction("xmin")[0] / (L[1] * L[2])
    assert np.isclose(sigma, uniaxial_closed_form(eps_end, E, SY, 5e3), rtol=1e-7)
    prob.destroy()


def test_cutback_gives_up_with_clear_error(comm):
    from hpcmsm.materials.j2 import J2Plasticity

    prob, _ = _bar(comm, _Fragile(J2Plasticity(3, E, NU, SY), limit=0.0), n=(3, 1, 1))
    with pytest.raises(ConvergenceError, match="cut-backs"):
        prob.solve(1, max_cuts=3)
    prob.destroy()
