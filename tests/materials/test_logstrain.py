"""Finite-strain J2 plasticity in Hencky strain (hpcmsm.materials.logstrain): divided differences
against 50-digit arithmetic, the small-strain limit, the exact large-strain uniaxial response,
objectivity, the consistent tangent against central differences (repeated stretches included),
and the energy balance stored + dissipated = work along a cyclic path converging O(Δ²)."""
import mpmath
import numpy as np
import pytest

from hpcmsm.errors import InputError
from hpcmsm.materials.base import tensor_to_mandel
from hpcmsm.materials.j2 import J2Plasticity, uniaxial_closed_form
from hpcmsm.materials.logstrain import LogStrain, LogStrainJ2, _dd1, _dd2

E, NU, SY, HI, HK = 200.0, 0.3, 1.0, 20.0, 10.0


def _rot(rng):
    Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return Q * np.sign(np.linalg.det(Q))


def _ref_dd2(f, x, y, z):
    """f[x, y, z] in mpmath arithmetic, with the confluent limits for repeated arguments."""
    if x == y == z:
        return -1 / (4 * x ** 2)                                   # f''/2
    if len({x, y, z}) == 2:
        p = x if x in (y, z) else y                                # the repeated one
        q = ({x, y, z} - {p}).pop()
        return (1 / (2 * p) - (f(p) - f(q)) / (p - q)) / (p - q)   # (f'(p) − f[p,q]) / (p − q)
    return ((f(x) - f(y)) / (x - y) - (f(y) - f(z)) / (y - z)) / (x - z)


def test_divided_differences_against_mpmath():
    mpmath.mp.dps = 50
    f = lambda x: mpmath.log(x) / 2                                           # noqa: E731
    rng = np.random.default_rng(3)
    trip = [(1.0, 1.0, 1.0), (2.0, 2.0, 0.5), (0.7, 1.3, 2.9)]
    for spread in (0.5, 2e-3, 1.01e-3, 0.99e-3, 1e-5, 1e-9):              # both sides of the Taylor switch
        m = rng.uniform(0.3, 3.0)
        trip.append(tuple(m * (1 + spread * rng.uniform(-0.5, 0.5, 3))))
    lam = np.sort(np.array(trip), axis=1)                                # eigh order
    got2 = _dd2(lam, _dd1(np.log(lam)[:, :, None], np.log(lam)[:, None, :]))
    for n, (a, b, c) in enumerate(lam):
        A, B, Cc = (mpmath.mpf(v) for v in (a, b, c))
        for i, j, k in np.ndindex(3, 3, 3):                              # all 27 orderings
            x, y, z = ((A, B, Cc)[t] for t in (i, j, k))
            ref = _ref_dd2(f, x, y, z)
            assert abs(got2[n, i, j, k] - float(ref)) <= 1e-9 * abs(float(ref)), (lam[n], i, j, k)
        ref1 = (f(A) - f(B)) / (A - B) if A != B else 1 / (2 * A)
        got1 = _dd1(np.log(a), np.log(b))
        assert abs(got1 - float(ref1)) <= 1e-13 * abs(float(ref1))


@pytest.mark.parametrize("dim", [2, 3])
def test_small_strain_limit(dim):
    """‖F − I‖ ~ ε: P and A equal the small-strain J2 σ and 𝔻 at ε = sym(F − I) up to O(ε)
    relative (a yielding point: σ_y is set below the trial stress)."""
    rng = np.random.default_rng(5)
    sy = 1e-4 * E * 1e-6
    fin, small = LogStrainJ2(dim, E, NU, sy, HI, HK), J2Plasticity(dim, E, NU, sy, HI, HK)
    errs = []
    for eps in (1e-5, 1e-6):
        H = eps * rng.normal(size=(4, dim, dim))
        F = np.eye(dim) + H
        P, A, new = fin.update(F, fin.initial_state(4))
        sig, D, new_s = small.update(tensor_to_mandel(0.5 * (H + np.swapaxes(H, 1, 2))), small.initial_state(4))
        assert np.all(new["alpha"] > 0)                                       # plastic
        sym = lambda X: 0.5 * (X + np.swapaxes(X, 1, 2))                     # noqa: E731
        es = np.abs(tensor_to_mandel(sym(P)) - sig).max() / np.abs(sig).max()
        # A acting on symmetric directions vs 𝔻 (Mandel): compare A:sym(H) with 𝔻:ε(H)
        G = rng.normal(size=(4, dim, dim))
        AG = np.einsum("niJkL,nkL->niJ", A, sym(G))
        DG = np.einsum("nij,nj->ni", D, tensor_to_mandel(sym(G)))
        et = np.abs(tensor_to_mandel(sym(AG)) - DG).max() / np.abs(DG).max()
        errs.append((es, et))
        assert es < 50 * eps and et < 50 * eps, (eps, es, et)
    assert errs[1][0] < errs[0][0] / 5 and errs[1][1] < errs[0][1] / 5       # the difference is O(ε)


def _uniaxial(mat, stretches, st=None):
    """Uniaxial stress F = diag(s, t, t): t from τ22 = 0 by Newton on the tangent, committing
    the state after each step.  Returns (τ11, ln J) per step and the final state."""
    st = mat.initial_state(1) if st is None else st
    t, out = 1.0, []
    for s in stretches:
        for _ in range(50):
            F = np.diag([s, t, t])[None]
            P, A, new = mat.update(F, st)
            if abs(P[0, 1, 1]) < 1e-15 * E:
                break
            t -= P[0, 1, 1] / (A[0, 1, 1, 1, 1] + A[0, 1, 1, 2, 2])
        else:
            raise AssertionError(f"lateral Newton did not converge at stretch {s}")
        st = new
        out.append((s * P[0, 0, 0], np.log(s * t * t)))         # τ11 = F11 P11 (coaxial, diagonal)
    return np.array(out), st


@pytest.mark.parametrize("Hi,Hk", [(0.0, 0.0), (HI, 0.0), (0.0, HK), (HI, HK)])
def test_uniaxial_large_strain_exact(Hi, Hk):
    """Monotonic uniaxial stress to 50 % stretch: τ11 against ln λ follows the 1D small-strain
    J2 law exactly (elastic and plastic stages), the volume change is purely elastic
    (ln J = (1 − 2ν) τ11 / E: plastic flow is isochoric), and τ = F S Fᵀ is uniaxial."""
    mat = LogStrainJ2(3, E, NU, SY, Hi, Hk)
    s = np.exp(np.r_[np.linspace(0, 2 * SY / E, 9)[1:], np.linspace(2 * SY / E, np.log(1.5), 21)[1:]])
    res, st = _uniaxial(mat, s)
    eps = np.log(s)
    ref = uniaxial_closed_form(eps, E, SY, Hi, Hk)
    assert eps[0] < SY / E < eps[-1]                                     # both stages visited
    assert np.allclose(res[:, 0], ref, rtol=1e-10, atol=1e-12)
    assert np.allclose(res[:, 1], (1 - 2 * NU) * res[:, 0] / E, rtol=1e-9, atol=1e-14)
    t = np.exp((res[-1, 1] - eps[-1]) / 2)                               # lateral stretch
    tau = mat.kirchhoff(np.diag([s[-1], t, t])[None], st)[0]             # committed state, same F
    assert np.allclose(tau, np.diag([res[-1, 0], 0, 0]), rtol=0, atol=1e-10 * res[-1, 0])
    assert np.isclose(st["alpha"][0], eps[-1] - ref[-1] / E, rtol=1e-9)      # ᾱ = Eᵖ11 in uniaxial
    # compression to 1/1.5 from virgin: the same law, mirrored
    res_c, _ = _uniaxial(mat, 1 / s)
    assert np.allclose(res_c[:, 0], -ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dim", [2, 3])
def test_pure_shear_large_strain_exact(dim):
    """Plane-strain pure shear F = diag(λ, 1/λ, 1) to λ = 1.5 (isochoric, fixed principal axes):
    E = ε diag(1, −1, 0), ε = ln λ, and the radial return is exact, so
    |s| = 2μ√2 ε (elastic) or |s| = √⅔ σ_y + ⅔ H |Eᵖ| with |Eᵖ| = (2μ√2 ε − √⅔ σ_y)/(2μ + ⅔H),
    H = H_iso + H_kin; τ = |s| diag(1, −1, 0)/√2 (τ33 = 0: tr τ = 3K ln J = 0)."""
    mat = LogStrainJ2(dim, E, NU, SY, HI, HK)
    mu, H = mat.mu, HI + HK
    lam = np.exp(np.linspace(0, np.log(1.5), 41)[1:])
    st = mat.initial_state(1)
    for lm in lam:
        F = np.diag([lm, 1 / lm] + ([1.0] if dim == 3 else []))[None]
        P, _, st = mat.update(F, st)
        eps = np.log(lm)
        s_el = 2 * mu * np.sqrt(2) * eps
        ep = max(0.0, (s_el - np.sqrt(2 / 3) * SY) / (2 * mu + 2 * H / 3))
        s_ref = s_el - 2 * mu * ep
        tau = mat.kirchhoff(F, st)[0]
        assert np.allclose(tau, s_ref / np.sqrt(2) * np.diag([1.0, -1.0, 0.0]), rtol=0, atol=1e-10 * s_ref)
        assert np.allclose(P[0], (tau @ np.linalg.inv(mat._F3(F)[0]).T)[:dim, :dim], rtol=0, atol=1e-10 * s_ref)
        assert np.isclose(st["alpha"][0], np.sqrt(2 / 3) * ep, rtol=1e-10, atol=1e-14)
    assert st["alpha"][0] > 0.3                                             # deep in the plastic range


def test_objectivity_and_purity():
    """P(QF) = Q P(F), A(QF)_iJkL = Q_ia Q_kb A(F)_aJbL, same new state and energy; the input
    state is never modified."""
    rng = np.random.default_rng(11)
    mat = LogStrainJ2(3, E, NU, SY, HI, HK)
    F0 = np.eye(3) + 0.1 * rng.normal(size=(6, 3, 3))
    _, _, st = mat.update(F0, mat.initial_state(6))
    F = np.eye(3) + 0.15 * rng.normal(size=(6, 3, 3))
    copy = {k: v.copy() for k, v in st.items()}
    P, A, new = mat.update(F, st)
    assert np.any(new["alpha"] > st["alpha"])
    Q = _rot(rng)
    P2, A2, new2 = mat.update(Q @ F, st)
    assert np.allclose(P2, Q @ P, rtol=0, atol=1e-12 * np.abs(P).max())
    assert np.allclose(A2, np.einsum("ia,kb,naJbL->niJkL", Q, Q, A), rtol=0, atol=1e-11 * np.abs(A).max())
    for k in new:
        assert np.allclose(new2[k], new[k], rtol=0, atol=1e-13)
    assert np.allclose(mat.energy(Q @ F, st), mat.energy(F, st), rtol=1e-12)
    for k in st:
        assert np.array_equal(st[k], copy[k])


@pytest.mark.parametrize("dim", [2, 3])
def test_stress_is_energy_derivative(dim):
    """P = ∂ψ/∂F (central differences of the stored energy, state fixed) for non-coaxial cases:
    an anisotropic elastic law wrapped by LogStrain, and J2 (elastic range) with a given
    non-coaxial deviatoric plastic strain Eᵖ."""
    from hpcmsm.materials.base import LinearElastic

    rng = np.random.default_rng(9)
    n = 5
    Bm = rng.normal(size=(6, 6))
    aniso = LogStrain(LinearElastic(Bm @ Bm.T + 6 * np.eye(6)), dim)
    j2 = LogStrainJ2(dim, E, NU, 1e3 * SY, HI, HK)
    st = j2.initial_state(n)
    ep = 0.1 * rng.normal(size=(n, 6))
    ep[:, :3] -= ep[:, :3].mean(axis=1, keepdims=True)                   # plastic flow is isochoric
    st["eps_p"], st["alpha"] = ep, np.sqrt(2 / 3) * np.linalg.norm(ep, axis=1)
    F = np.eye(dim) + 0.3 * rng.normal(size=(n, dim, dim))
    for mat, state in ((aniso, aniso.initial_state(n)), (j2, st)):
        if mat is j2:
            assert np.all(mat.elastic_ok(F, state))
        P = mat.update(F, state)[0]
        Pfd = _fd_dF(lambda G: mat.energy(G, state), F)
        assert np.abs(P - Pfd).max() < 1e-7 * np.abs(P).max(), np.abs(P - Pfd).max()


def _fd_dF(fun, F, h=1e-6):
    """Central differences of fun(F) (n, ...) with respect to every F_kL: (n, ..., d, d)."""
    d = F.shape[-1]
    out = None
    for k in range(d):
        for L in range(d):
            Fp, Fm = F.copy(), F.copy()
            Fp[:, k, L] += h
            Fm[:, k, L] -= h
            v = (fun(Fp) - fun(Fm)) / (2 * h)
            if out is None:
                out = np.zeros(v.shape + (d, d))
            out[..., k, L] = v
    return out


def _fd_error(mat, F, st, h=1e-6):
    """Per-point max relative error of A against central differences of P."""
    _, A, _ = mat.update(F, st)
    Afd = _fd_dF(lambda G: mat.update(G, st)[0], F, h)
    return np.abs(A - Afd).reshape(len(F), -1).max(1) / np.abs(A).reshape(len(F), -1).max(1)


def _cases(dim, rng):
    I = np.eye(dim)
    shear = I.copy()
    shear[0, 1] = 0.4
    Fs = [I, 1.3 * I, 0.8 * I, shear, I + 0.2 * rng.normal(size=(dim, dim)),
          np.diag([1.2, 1.2 * (1 + 3e-7)] + ([1.2 * (1 - 2e-6)] if dim == 3 else [])),   # near-repeated
          np.diag([1.2, 1.2 * (1 + 1e-3)] + ([0.9] if dim == 3 else []))]                  # at the switch
    if dim == 3:
        Fs += [np.diag([1.25, 1.25, 0.85]), _rot(rng) @ np.diag([1.1, 1.1, 1.1 * (1 + 5e-4)])]
    return np.array(Fs)


@pytest.mark.parametrize("dim", [2, 3])
def test_tangent_central_differences(dim):
    """A = ∂P/∂F to 1e-6 relative at F = I, λI, plane strain/equibiaxial, simple shear, random,
    (near-)repeated principal stretches; virgin (elastic for small F) and plastic states with a
    non-coaxial history; an anisotropic elastic law through the LogStrain wrapper."""
    rng = np.random.default_rng(2)
    mat = LogStrainJ2(dim, E, NU, SY, HI, HK)
    F = _cases(dim, rng)
    n = len(F)
    virgin = mat.initial_state(n)
    assert np.all(_fd_error(mat, F, virgin) < 1e-6)
    # a committed plastic history along a random path (non-coaxial Eᵖ), then trial states
    _, _, st = mat.update(np.eye(dim) + 0.05 * rng.normal(size=(n, dim, dim)), virgin)
    assert np.all(st["alpha"] > 0)
    ok = mat.elastic_ok(F, st)
    assert ok.any() or (~ok).any()
    assert np.all(_fd_error(mat, F, st) < 1e-6)
    # elastic trial points inside the yield surface (small perturbation of the committed state)
    Fe = np.eye(dim) + 1e-4 * rng.normal(size=(n, dim, dim))
    big = LogStrainJ2(dim, E, NU, 100 * SY, HI, HK)
    assert np.all(big.elastic_ok(Fe, big.initial_state(n)))
    assert np.all(_fd_error(big, Fe, big.initial_state(n)) < 1e-6)
    # an anisotropic elastic law wrapped by LogStrain: T is not coaxial with E at any F
    from hpcmsm.materials.base import LinearElastic

    Bm = rng.normal(size=(6, 6))
    aniso = LogStrain(LinearElastic(Bm @ Bm.T + 6 * np.eye(6)), dim)
    assert np.all(_fd_error(aniso, F, aniso.initial_state(n)) < 1e-6)


def _cycle(mat, nsteps):
    """Cyclic simple shear + stretch (0 → γ → −γ → 0): trapezoidal work ∫P:dF, final stored
    energy, total and per-increment dissipation, ψ along the path."""
    t = np.linspace(0.0, 1.0, nsteps + 1)
    g = 0.3 * np.sin(2 * np.pi * t)
    Fs = np.zeros((len(t), 3, 3))
    Fs[:] = np.eye(3)
    Fs[:, 0, 1] = g
    Fs[:, 1, 1] = 1 + 0.2 * np.sin(np.pi * t)
    st = mat.initial_state(1)
    P0 = np.zeros((3, 3))
    work, diss, dmin, psis = 0.0, 0.0, np.inf, []
    for k in range(1, len(t)):
        P, _, new = mat.update(Fs[k][None], st)
        work += 0.5 * np.sum((P0 + P[0]) * (Fs[k] - Fs[k - 1]))
        d = float(mat.dissipation_increment(Fs[k][None], st, new)[0])
        diss += d
        dmin = min(dmin, d)
        st, P0 = new, P[0]
        psis.append(float(mat.energy(Fs[k][None], st)[0]))
    return work, psis[-1], diss, dmin, min(psis), float(st["alpha"][0])


def test_energy_balance_cyclic_converges_second_order():
    mat = LogStrainJ2(3, E, NU, SY, HI, HK)
    errs = []
    for n in (100, 200, 400):
        W, psi, D, dmin, psimin, alpha = _cycle(mat, n)
        assert alpha > 0.1 and D > 0.1 * W > 0                       # strongly plastic cycle
        assert dmin >= -1e-12 * D and psimin >= 0
        errs.append(abs(W - psi - D) / W)
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert errs[-1] < 1e-3 and np.all(rates > 1.8), (errs, rates)


def test_bad_input():
    with pytest.raises(InputError):
        LogStrain(J2Plasticity(2, E, NU, SY))
    with pytest.raises(InputError):
        LogStrainJ2(3, E, 0.6, SY)
    mat = LogStrainJ2(3, E, NU, SY)
    with pytest.raises(FloatingPointError):
        mat.update(np.diag([-1.0, 1, 1])[None], mat.initial_state(1))
