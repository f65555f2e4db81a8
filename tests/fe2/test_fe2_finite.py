"""Finite-strain FE² (total Lagrangian macro, F̄ → P̄, Ā at every quadrature point).

Oracles: the independent finite-strain solver of :mod:`hpcmsm.fem` (HyperelasticProblem: SNES,
its own assembly and mesh) on the same geometry; the small-strain FE² at vanishing load (the
difference must scale like the load, i.e. the relative difference is O(load)); path
independence of hyperelasticity (a cut-back run ends where a fine-stepped one does); the fourth
order of the Hermite-corrected work integral (energy audit).
"""
import os

import numpy as np
import pytest
from mpi4py import MPI

from hpcmsm.config import from_dict
from hpcmsm.fe2.driver import run_fe2
from hpcmsm.fe2.inputs import FE2Input
from tests.fe2.fe2_common import fe2_input, history

E, NU = 70e3, 0.33


def _cfg(outdir, **over):
    base = {
        "macro": {"geometry": "plate_with_hole", "size": 10.0, "hole_radius": 3.0, "cells": [4, 2],
                  "displacement": 3.0, "steps": 4, "kinematics": "finite"},
        "micro": {"model": "point", "matrix": {"model": "neo_hookean", "E": E, "nu": NU}},
        "pool": {"group_size": 1, "balance": "round_robin"},
        "newton": {"rtol": 1e-10},
        "output": {"dir": outdir, "png": False},
    }
    return fe2_input(base, over)


def _gather_by_position(comm, x, u):
    """All owned (position, value) rows of every rank, sorted by position (rank-independent)."""
    X = np.concatenate(comm.allgather(np.asarray(x)))
    U = np.concatenate(comm.allgather(np.asarray(u)))
    order = np.lexsort(tuple(np.round(X[:, k], 9) for k in reversed(range(X.shape[1]))))
    return X[order], U[order]


@pytest.mark.mpi
def test_point_neohookean_fe2_equals_direct_hyperelastic_problem(comm):
    """Homogeneous one-point micro (Neo-Hookean): the FE² macro Newton with the pool equals
    fem.HyperelasticProblem (SNES + its own assembly on fem's own box mesh) with the same
    material, mesh and loads -- displacements and reactions at every step, 30 % stretch with
    both ends clamped laterally (an inhomogeneous deformation), at any rank count and group size."""
    from hpcmsm.fe2.macro import Dirichlet, MacroProblem, NewtonDriver, box_mesh
    from hpcmsm.fe2.micro import PointMicro
    from hpcmsm.fe2.pool import HomogenizedMaterial, RVEPool
    from hpcmsm.fem import Dirichlet as FemDirichlet, HyperelasticProblem, create_box
    from hpcmsm.materials.hyperelastic import NeoHookean

    L, n, delta, steps = 1.0, [4, 3], 0.3, 3
    mat = NeoHookean(2, E, NU)
    # direct finite-strain solve
    fmesh = create_box(comm, n, upper=[L, L])
    direct = HyperelasticProblem(fmesh, mat, [FemDirichlet("xmin", 0.0), FemDirichlet("xmax", [delta, 0.0])])
    R_ref = []
    direct.solve(steps, callback=lambda pr, rec: R_ref.append(pr.reaction("xmax")))
    R_ref = np.array(R_ref)
    Xr, Ur = _gather_by_position(comm, fmesh.points[:fmesh.n_owned],
                                 direct.u.getArray(readonly=True).reshape(-1, 2))
    direct.destroy()
    for g in sorted({1, comm.size}):
        mesh = box_mesh([L, L], n)
        xmin, xmax = mesh.sets["xmin"], mesh.sets["xmax"]
        bcs = [Dirichlet(xmin, 0, 0.0), Dirichlet(xmin, 1, 0.0), Dirichlet(xmax, 0, delta), Dirichlet(xmax, 1, 0.0)]
        p = MacroProblem(comm, mesh, [], bcs, kinematics="finite")
        pool = RVEPool(comm, lambda sub: PointMicro(mat), p.nqp_global, p.qp_owner, g)
        assert pool.m == 4
        p.blocks = [(HomogenizedMaterial(pool, p.qp_ids, 2), np.arange(len(p.qp_ids)))]
        drv = NewtonDriver(p, rtol=1e-11)
        R = []
        for k in range(1, steps + 1):
            res = drv.step(k / steps)
            assert res.converged, res.message
            assert res.rates and res.rates[-1] > 1.8, res.rates          # quadratic: consistent Ā
            R.append([p.reaction(drv.f_int, xmax, 0), p.reaction(drv.f_int, xmax, 1)])
        fm = p.fmesh
        X, U = _gather_by_position(comm, fm.points[:fm.n_owned], p.x.getArray(readonly=True).reshape(-1, 2))
        assert np.allclose(X, Xr, atol=1e-12)
        assert np.allclose(U, Ur, rtol=0, atol=1e-9 * delta), np.abs(U - Ur).max()
        assert np.allclose(np.array(R), R_ref, rtol=1e-7, atol=1e-7 * abs(R_ref).max())
        assert np.abs(U[:, 1]).max() > 1e-2 * delta      # lateral contraction between clamped ends: inhomogeneous
        pool.free()
        p.destroy()


@pytest.mark.parametrize("micro", ["point", "voxel"])
def test_small_strain_limit(tmp_path, micro):
    """At vanishing load finite-strain FE² (Neo-Hookean phases) → small-strain FE² with the
    linearized phases (isotropic, same E, ν): the relative reaction difference is O(load) --
    halving the load halves it -- while at 30 % stretch it is O(1).  ``voxel``: a two-phase
    periodic RVE (finite-strain VoxelRVE vs the small-strain one)."""
    rel = []
    for delta in (2e-3, 1e-3, 3.0):
        out = {}
        for kin, model in (("finite", "neo_hookean"), ("small", "linear_elastic")):
            cfg = _cfg(str(tmp_path / kin), macro={"displacement": delta, "steps": 1, "kinematics": kin},
                       micro={"model": micro, "voxels": 6, "microstructure": "particle", "volume_fraction": 0.3,
                              "matrix": {"model": model, "E": E, "nu": NU},
                              "particle": {"model": model, "E": 5 * E, "nu": 0.2}})
            out[kin] = history(run_fe2(cfg, MPI.COMM_SELF, quiet=True))["reaction"][-1]
        rel.append(abs(out["finite"] - out["small"]) / abs(out["small"]))
    assert 1.8 < rel[0] / rel[1] < 2.2, rel          # first order in the load
    assert rel[1] < 1e-3 * 10, rel
    assert rel[2] > 50 * rel[0], rel                  # and really nonlinear at large stretch


def test_hermite_work_integral_is_fourth_order_and_audits_pass(tmp_path):
    """Energy audit of a hyperelastic FE² run: W_ext (Hermite-corrected trapezoid over the load
    steps) = stored energy; halving the load step divides the mismatch by ~16 (fourth order)."""
    errs = []
    for steps in (2, 4):
        s = run_fe2(_cfg(str(tmp_path / f"s{steps}"), macro={"steps": steps}), MPI.COMM_SELF, quiet=True)
        assert s["audit_passed"], s["audit"]
        h = history(s)
        errs.append(abs(h["external_work"][-1] - h["stored_energy"][-1]) / h["stored_energy"][-1])
        assert np.all(h["dissipation"] == 0.0)
        assert min(s["newton_orders"]) > 1.8, s["newton_orders"]
    assert 12 < errs[0] / errs[1] < 20, errs         # measured 15.9


def test_det_f_failure_cuts_back_and_path_independence(tmp_path, capsys):
    """40 % compression in one step: the tangent predictor inverts elements (det F ≤ 0 at a macro
    QP), the step is cut back (then sub-stepped up to the target), and the hyperelastic end state
    equals a run in 8 equal steps."""
    over = dict(macro={"displacement": -4.0, "steps": 1}, newton={"max_cutbacks": 8, "max_iterations": 15})
    s1 = run_fe2(_cfg(str(tmp_path / "one"), **over), MPI.COMM_SELF, quiet=False)
    log = capsys.readouterr().out
    assert "det F <= 0 at a macro quadrature point" in log and "cutting the increment back" in log
    assert history(s1)["cutbacks"][-1] >= 1
    over["macro"] = {**over["macro"], "steps": 8}
    s12 = run_fe2(_cfg(str(tmp_path / "eight"), **over), MPI.COMM_SELF, quiet=True)
    assert s12["audit_passed"], s12["audit"]
    a, b = history(s1)["reaction"][-1], history(s12)["reaction"][-1]
    assert np.isclose(a, b, rtol=1e-8), (a, b)
    assert a < 0


def test_bad_input_kinematics_mismatch():
    from hpcmsm.errors import ConfigError

    with pytest.raises(ConfigError, match="micro.matrix.model.*finite-strain phase materials"):
        from_dict(FE2Input, {"macro": {"kinematics": "finite"}, "micro": {"model": "point"}})
    with pytest.raises(ConfigError, match="micro.particle.model.*finite-strain"):
        from_dict(FE2Input, {"macro": {"kinematics": "finite"},
                             "micro": {"matrix": {"model": "neo_hookean"}, "particle": {"E": 1e5, "nu": 0.2}}})
    with pytest.raises(ConfigError, match="small-strain phase materials"):
        from_dict(FE2Input, {"micro": {"model": "point", "matrix": {"model": "neo_hookean"}}})
    with pytest.raises(ConfigError, match="no yield stress"):
        from_dict(FE2Input, {"micro": {"matrix": {"model": "neo_hookean", "sigma_y": 10.0}}})
    # a homogeneous RVE only needs the matrix to be finite
    from_dict(FE2Input, {"macro": {"kinematics": "finite"},
                         "micro": {"microstructure": "homogeneous", "matrix": {"model": "neo_hookean"}}})


COMPOSITE = dict(micro={"model": "voxel", "voxels": 6, "microstructure": "particle", "volume_fraction": 0.3,
                        "matrix": {"model": "neo_hookean", "E": 10.0, "nu": 0.45},
                        "particle": {"model": "neo_hookean", "E": 1000.0, "nu": 0.3}},
                 pool={"balance": "cost", "cost_measure": "iterations"})


@pytest.mark.mpi
def test_one_phase_voxel_rve_equals_point_micro(comm, shared_tmp):
    """A one-phase finite-strain VoxelRVE is the material point: same reaction history as the
    point micro (itself equal to fem.HyperelasticProblem, above), Hill–Mandel exact."""
    ref = run_fe2(_cfg(os.path.join(shared_tmp, "pt"), macro={"steps": 2}), comm, quiet=True)
    s = run_fe2(_cfg(os.path.join(shared_tmp, "vx"), macro={"steps": 2},
                     micro={"model": "voxel", "voxels": 4, "microstructure": "homogeneous"}), comm, quiet=True)
    assert np.allclose(history(s)["reaction"], history(ref)["reaction"], rtol=1e-9)
    assert s["audit_passed"] and history(s)["hill_mandel_max"][-1] < 1e-12, s["audit"]


@pytest.mark.mpi
def test_composite_finite_fe2_rank_and_group_independent(comm, shared_tmp):
    """Neo-Hookean matrix + stiff particles, 30 % stretch: the macro Newton with the condensed
    RVE tangent Ā converges quadratically; the parallel run (one group over all ranks: voxels
    split; cost balancing) equals a serial run of the same input on COMM_SELF."""
    over = dict(COMPOSITE, macro={"steps": 2, "cells": [2, 2]})
    ref = run_fe2(_cfg(os.path.join(shared_tmp, f"serial{comm.rank}"), **over), MPI.COMM_SELF, quiet=True)
    o = dict(over, pool={**over["pool"], "group_size": comm.size})
    s = run_fe2(_cfg(os.path.join(shared_tmp, "par"), **o), comm, quiet=True)
    a, b = history(s), history(ref)
    for key in ("reaction", "external_work", "stored_energy"):
        assert np.allclose(a[key], b[key], rtol=1e-8), key
    assert s["audit_passed"], s["audit"]
    assert min(s["newton_orders"]) > 1.8, s["newton_orders"]           # measured 1.98-1.99
    # stiffening particles: the composite carries more than the matrix alone would
    mat_only = run_fe2(_cfg(os.path.join(shared_tmp, f"m{comm.rank}"), macro={"steps": 2, "cells": [2, 2]},
                            micro={"matrix": {"model": "neo_hookean", "E": 10.0, "nu": 0.45}}),
                       MPI.COMM_SELF, quiet=True)
    assert a["reaction"][-1] > 1.3 * history(mat_only)["reaction"][-1]


@pytest.mark.mpi
def test_finite_output_and_restart_across_rank_counts(comm, shared_tmp):
    """F, P and Cauchy σ reach HDF5 (σ symmetric: rotational balance of the homogenized P); the
    micro displacement of a selected RVE is (F̄ − I)X + periodic fluctuation; a run stopped after
    step 2 and restarted on one rank (COMM_SELF), or on all ranks as one RVE group, ends with the
    uninterrupted run's history."""
    import shutil

    import h5py

    from hpcmsm import signals

    over = dict(COMPOSITE, macro={"steps": 3, "cells": [2, 2]}, output={"checkpoint_every": 1, "micro_qps": [5]})
    full = os.path.join(shared_tmp, "full")
    s = run_fe2(_cfg(full, **over), comm, quiet=True)
    ref = history(s)
    assert s["audit_passed"], s["audit"]
    comm.Barrier()
    if comm.rank == 0:
        with h5py.File(os.path.join(full, "fe2_macro_000003.h5"), "r") as f:
            F = f["fields/deformation_gradient"][...]
            P = f["fields/first_piola"][...]
            sig = f["fields/cauchy"][...].reshape(-1, 2, 2)
        assert F.shape == P.shape == (4, 4)
        assert np.abs(sig - sig.transpose(0, 2, 1)).max() < 1e-8 * np.abs(sig).max()
        assert F[:, 0].max() > 1.2                                       # large stretch reached
        with h5py.File(os.path.join(full, "fe2_rve_000003.h5"), "r") as f:
            assert f.attrs["kinematics"] == "finite" and f["strain"].shape == (s["quadrature_points"], 4)
            Fbar = f["strain"][5].reshape(2, 2)
        with h5py.File(os.path.join(full, "fe2_micro_qp5_000003.h5"), "r") as f:
            u = f["fields/displacement"][...]                             # (y, x, 3) on the (n+1)² grid
        assert np.allclose(u[0, -1, :2] - u[0, 0, :2], Fbar[:, 0] - [1, 0], atol=1e-12)
        assert np.allclose(u[-1, 0, :2] - u[0, 0, :2], Fbar[:, 1] - [0, 1], atol=1e-12)
    # stop after step 2 (the driver's test hook), then every rank restarts its own copy serially
    cut = os.path.join(shared_tmp, "cut")
    os.environ["HPCMSM_FE2_STOP_AFTER"] = "2"
    try:
        part = run_fe2(_cfg(cut, **over), comm, quiet=True)
    finally:
        del os.environ["HPCMSM_FE2_STOP_AFTER"]
        signals.reset()
    assert part.get("stopped") and part["step"] == 2
    comm.Barrier()
    mine = os.path.join(shared_tmp, f"cut_rank{comm.rank}")
    shutil.copytree(cut, mine)
    got = run_fe2(_cfg(mine, **over), MPI.COMM_SELF, restart=True, quiet=True)
    g = history(got)
    assert len(g["reaction"]) == 3
    for key in ("reaction", "external_work", "stored_energy"):
        assert np.allclose(g[key], ref[key], rtol=1e-9), key
    # and on all ranks as one RVE group (voxels split over the group)
    comm.Barrier()
    o = dict(over, pool={**over["pool"], "group_size": comm.size})
    got = run_fe2(_cfg(cut, **o), comm, restart=True, quiet=True)
    for key in ("reaction", "external_work", "stored_energy"):
        assert np.allclose(history(got)[key], ref[key], rtol=1e-9), key


J2LOG = {"model": "j2_log", "E": 70e3, "nu": 0.33, "sigma_y": 100.0, "H": 500.0}


def test_j2_log_energy_balance_is_second_order(tmp_path):
    """Finite-strain J2 (Hencky strain) micro: it yields and dissipates (D > 0 every step), and
    external work − stored − dissipated (all trapezoidal over the load steps) → 0 like Δλ²."""
    errs = []
    for steps in (3, 6):
        s = run_fe2(_cfg(str(tmp_path / f"s{steps}"), macro={"displacement": 0.5, "steps": steps},
                         micro={"matrix": J2LOG}), MPI.COMM_SELF, quiet=True)
        assert s["audit_passed"], s["audit"]
        h = history(s)
        assert h["plastic_qps"][-1] == s["quadrature_points"] and np.all(np.diff(h["dissipation"]) > 0)
        W, psi, D = h["external_work"][-1], h["stored_energy"][-1], h["dissipation"][-1]
        assert D > psi                                     # mostly plastic work at 5 % stretch
        errs.append(abs(W - psi - D) / W)
    assert 3.0 < errs[0] / errs[1] < 5.5, errs


@pytest.mark.slow
@pytest.mark.mpi
def test_j2_log_composite_voxel_rank_independent(comm, shared_tmp):
    """j2_log matrix + Neo-Hookean particles in the voxel RVE: parallel = serial (slow)."""
    over = dict(micro={**COMPOSITE["micro"], "matrix": J2LOG, "particle": {"model": "neo_hookean", "E": 400e3,
                                                                           "nu": 0.2}},
                macro={"displacement": 0.5, "steps": 2})
    ref = run_fe2(_cfg(os.path.join(shared_tmp, f"serial{comm.rank}"), **over), MPI.COMM_SELF, quiet=True)
    s = run_fe2(_cfg(os.path.join(shared_tmp, "par"), **over), comm, quiet=True)
    for key in ("reaction", "external_work", "stored_energy", "dissipation"):
        assert np.allclose(history(s)[key], history(ref)[key], rtol=1e-8), key
    assert s["audit_passed"], s["audit"]


@pytest.mark.mpi
def test_3d_box_uniaxial_stress_closed_form(comm, shared_tmp):
    """3D box on rollers stretched by 30 % (homogeneous uniaxial stress): the FE² reaction with
    a one-phase finite voxel RVE (m = 9) equals P₁₁(λ)·L² of the closed-form Neo-Hookean
    uniaxial-stress solution, the lateral stretch t solving μ(t − 1/t) + Λ ln(λt²)/t = 0."""
    from scipy.optimize import brentq

    from hpcmsm.materials.base import lame_from_young_poisson

    lam_, mu = lame_from_young_poisson(E, NU)
    s = run_fe2(_cfg(os.path.join(shared_tmp, "box3d"),
                     macro={"geometry": "box", "dim": 3, "size": 1.0, "cells": [3, 1, 1], "displacement": 0.3,
                            "steps": 2},
                     micro={"model": "voxel", "voxels": 4, "microstructure": "homogeneous"}), comm, quiet=True)
    R = history(s)["reaction"]
    for k, st in enumerate((1.15, 1.3)):
        t = brentq(lambda t: mu * (t - 1 / t) + lam_ * np.log(st * t * t) / t, 0.2, 5.0)
        P11 = mu * (st - 1 / st) + lam_ * np.log(st * t * t) / st
        assert np.isclose(R[k], P11, rtol=1e-9), (R[k], P11)
    assert s["audit_passed"], s["audit"]


def test_restart_refuses_a_checkpoint_of_the_other_kinematics(tmp_path):
    from hpcmsm.errors import InputError

    run_fe2(_cfg(str(tmp_path), macro={"steps": 2}), MPI.COMM_SELF, quiet=True)
    small = _cfg(str(tmp_path), macro={"steps": 2, "kinematics": "small"},
                 micro={"matrix": {"model": "linear_elastic", "E": E, "nu": NU}})
    with pytest.raises(InputError, match="checkpoint"):
        run_fe2(small, MPI.COMM_SELF, restart=True, quiet=True)
