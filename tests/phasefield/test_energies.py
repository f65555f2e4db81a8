"""Free energies: derivatives, convex–concave splits, closed-form interface results (pure numpy)."""
import numpy as np
import pytest

from hpcmsm.errors import InputError
from hpcmsm.phasefield import DoubleWell, Landau, RegularSolution, UserDefined, make_energy
from hpcmsm.phasefield.energies import Callables

ENERGIES = [
    (DoubleWell(), np.linspace(-0.5, 1.5, 201)),
    (Landau(A=-1.3, B=0.7), np.linspace(-2, 2, 201)),
    (Landau(A=0.4, B=1.0), np.linspace(-2, 2, 201)),
    (RegularSolution(theta=1.0, chi=2.7), np.linspace(0.01, 0.99, 201)),
    (UserDefined("c**2*(1-c)**2 + 0.1*c**3", concave="-c**2/2"), np.linspace(-1, 2, 201)),
]


@pytest.mark.parametrize("energy,c", ENERGIES, ids=lambda e: getattr(e, "name", ""))
def test_derivatives_match_finite_differences(energy, c):
    h = 1e-5
    d1 = (energy.psi(c + h) - energy.psi(c - h)) / (2 * h)
    d2 = (energy.dpsi(c + h) - energy.dpsi(c - h)) / (2 * h)
    assert np.allclose(energy.dpsi(c), d1, rtol=1e-6, atol=1e-7)
    assert np.allclose(energy.d2psi(c), d2, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("energy,c", ENERGIES, ids=lambda e: getattr(e, "name", ""))
def test_split_is_convex_plus_concave(energy, c):
    # ψ' = ψ'_c + ψ'_e with ψ_c'' ≥ 0 and ψ_e'' ≤ 0: the condition for unconditional stability
    assert np.allclose(energy.dpsi_convex(c) + energy.dpsi_concave(c), energy.dpsi(c), atol=1e-12)
    assert np.all(energy.d2psi_convex(c) >= -1e-12)
    h = 1e-5
    d2e = (energy.dpsi_concave(c + h) - energy.dpsi_concave(c - h)) / (2 * h)
    assert np.all(d2e <= 1e-7)


def test_double_well_minima_and_pfhub_values():
    f = DoubleWell()
    assert f.psi(np.array([0.3, 0.7])) == pytest.approx([0, 0], abs=1e-15)
    assert f.dpsi(np.array([0.3, 0.5, 0.7])) == pytest.approx([0, 0, 0], abs=1e-15)
    assert f.psi(np.array(0.5)) == pytest.approx(5 * 0.2 ** 4)
    assert f.d2psi(np.array(0.3)) == pytest.approx(1.6)  # 8 ρ d²


def test_tanh_profile_is_equilibrium_and_surface_tension_closed_form():
    """κ c'' = ψ'(c) for c = m + d tanh(x/δ); σ = ∫κ c'² dx = ∫ 2ψ(c) dx = Δc³√(2κρ)/6."""
    f, kappa = DoubleWell(), 2.0
    delta = f.interface_width(kappa)
    x = np.linspace(-40, 40, 400001)
    c = 0.5 + 0.2 * np.tanh(x / delta)
    dx = x[1] - x[0]
    cpp = np.gradient(np.gradient(c, dx), dx)
    assert np.max(np.abs(kappa * cpp - f.dpsi(c))[5:-5]) < 1e-7
    cp = np.gradient(c, dx)
    sigma_grad = np.trapz(kappa * cp ** 2, x)
    sigma_bulk = np.trapz(2 * f.psi(c), x)  # equipartition
    assert sigma_grad == pytest.approx(f.surface_tension(kappa), rel=1e-7)
    assert sigma_bulk == pytest.approx(f.surface_tension(kappa), rel=1e-7)


def test_bad_input_is_rejected():
    with pytest.raises(InputError):
        DoubleWell(rho=-1)
    with pytest.raises(InputError):
        RegularSolution(theta=0)
    with pytest.raises(InputError):
        UserDefined("c**2 + x")
    with pytest.raises(InputError):
        make_energy("nonsense")
    with pytest.raises(InputError, match="outside"):
        RegularSolution().check_domain(0.0, 0.5)
    RegularSolution().check_domain(0.1, 0.9)
    assert np.isnan(RegularSolution().dpsi(np.array([1.2]))).all()


def test_callables_energy():
    e = Callables(lambda c: c ** 4, lambda c: 4 * c ** 3, lambda c: 12 * c ** 2)
    c = np.linspace(-1, 1, 5)
    assert np.allclose(e.implicit(c, True)[0], 4 * c ** 3)
    assert np.allclose(e.explicit(c, True), 0)
