"""``[micro] solver = "distributed"``: the DMDA/KSP RVE (:class:`hpcmsm.fe2.rve_dist.DistributedRVE`)
against the gathered-direct :class:`hpcmsm.fe2.rve.VoxelRVE`.

Both discretise the same cell the same way (unit cell, one Q1 voxel element of
hpcmsm.homogenization.element per voxel, same quadrature, node 0 pinned for PBC, boundary nodes
fixed for KUBC, same natural node/element order of the flat state), so they must agree to the
Krylov tolerance: stress, consistent tangent, the whole flat state (fluctuation and J2 history)
and the info energies, over a load–unload–reverse path.  The oracle is a VoxelRVE on COMM_SELF
(rank-independent); the distributed model runs on the whole communicator (a group of 1, 2 or 3
ranks) and on COMM_SELF.
"""
import os

import numpy as np
import pytest
from mpi4py import MPI

from hpcmsm import signals
from hpcmsm.config import from_dict
from hpcmsm.errors import ConfigError, InputError
from hpcmsm.fe2.inputs import FE2Input
from hpcmsm.fe2.rve import VoxelRVE
from hpcmsm.fe2.rve_dist import DistributedRVE
from hpcmsm.homogenization import microstructure as ms
from hpcmsm.materials.base import LinearElastic
from hpcmsm.materials.j2 import J2Plasticity
from tests.fe2.fe2_common import fe2_input, history


def _composite(d, n, H=50.0):
    lab = ms.inclusion_array((n,) * d, 0.25).labels
    return lab, [J2Plasticity(d, 70e3, 0.33, 100.0, H), LinearElastic.isotropic(d, 400e3, 0.2)]


def _path(m):
    direction = np.zeros(m)
    direction[0], direction[1], direction[-1] = 1.0, -0.3, 0.4
    # elastic, plastic loading, unloading (elastic), reverse plastic loading
    return [lam * 1e-3 * direction for lam in (0.5, 1.5, 3.0, 2.0, -1.5)]


def _step(model, E, state, reuse=True):
    r = model.try_elastic(E, state) if reuse else None
    return r if r is not None else model.solve(E, state)


MUMPS = {"ksp_type": "preonly", "pc_type": "cholesky", "pc_factor_mat_solver_type": "mumps"}


@pytest.mark.mpi
@pytest.mark.parametrize("d,n,bc,H,opts", [(2, 8, "periodic", 50.0, None), (2, 6, "kubc", 50.0, None),
                                           (3, 4, "periodic", 50.0, None), (3, 6, "periodic", 0.0, None),
                                           (3, 4, "kubc", 50.0, MUMPS)])
def test_distributed_equals_direct_rve_on_a_j2_path(comm, d, n, bc, H, opts):
    """Default GMRES + GAMG, and MUMPS through [petsc.micro] options.  H = 0: perfectly plastic
    matrix (nearly singular tangent; CG + GAMG fails there)."""
    lab, mats = _composite(d, n, H)
    ref = VoxelRVE(lab, mats, MPI.COMM_SELF, bc=bc)
    dist = DistributedRVE(lab, mats, comm, bc=bc, petsc_options=opts)
    assert dist.state_size == ref.state_size
    Cel = ref.elastic_tangent()
    assert np.allclose(dist.elastic_tangent(), Cel, rtol=0, atol=1e-10 * abs(Cel).max())
    sa, sb = ref.initial_state(), dist.initial_state()
    assert np.array_equal(sa, sb)
    saw = set()
    for E in _path(ref.m):
        ra, rb = _step(ref, E, sa), _step(dist, E, sb)
        assert ra[3]["reused"] == rb[3]["reused"] and rb[3]["converged"]
        saw.add(bool(rb[3]["reused"]))
        S = abs(ra[0]).max()
        assert np.allclose(rb[0], ra[0], rtol=0, atol=1e-9 * S)
        assert np.allclose(rb[1], ra[1], rtol=0, atol=1e-8 * abs(ra[1]).max())
        # the flat state: E_n, fluctuation (natural node order) and J2 history (natural QP order)
        assert np.allclose(rb[2], ra[2], rtol=0, atol=1e-8 * abs(ra[2]).max())
        for key in ("psi", "dissipation", "peeq", "plastic"):
            assert rb[3][key] == pytest.approx(ra[3][key], rel=1e-8, abs=1e-14), key
        if abs(ra[0] @ E) > 0:
            assert rb[3]["hill_mandel"] < 1e-9
        sa, sb = ra[2], rb[2]
    assert saw == {True, False}                    # both exact elastic reuse and Newton solves ran
    assert sb[ref.m + ref.ndof:].max() > 0         # plastic history was built up
    # micro fields in natural element order equal VoxelRVE's
    fa, fb = ref.micro_fields(sa), dist.micro_fields(sb)
    for key in ("strain", "stress", "peeq", "phase", "fluctuation"):
        assert np.allclose(fb[key], fa[key], rtol=0, atol=1e-8 * max(abs(fa[key]).max(), 1e-300)), key
    dist.destroy()


@pytest.mark.mpi
def test_distributed_tangent_is_the_derivative_and_state_moves_between_group_sizes(comm):
    """Consistent tangent = central differences of the homogenized stress from a plastic state;
    a state produced on the whole communicator continues on a one-rank group (and vice versa)
    exactly as on the original group (the pool migrates and restarts states this way)."""
    lab, mats = _composite(2, 8, H=10.0)
    big = DistributedRVE(lab, mats, comm)
    one = DistributedRVE(lab, mats, MPI.COMM_SELF)
    E1 = np.array([2e-3, -0.5e-3, 0.8e-3])
    s1 = big.solve(E1, big.initial_state())[2]
    E2 = np.array([3e-3, -0.4e-3, 1.0e-3])
    S, C, s2, info = big.solve(E2, s1)
    assert info["converged"] and info["plastic"] > 0
    h = 1e-7
    fd = np.column_stack([(one.solve(E2 + h * e, s1)[0] - one.solve(E2 - h * e, s1)[0]) / (2 * h)
                          for e in np.eye(3)])
    assert np.allclose(C, fd, rtol=0, atol=1e-5 * abs(C).max())
    S1, C1, s2b, _ = one.solve(E2, s1)
    assert np.allclose(S1, S, rtol=0, atol=1e-10 * abs(S).max())
    assert np.allclose(s2b, s2, rtol=0, atol=1e-9 * abs(s2).max())
    # warm start (the pool's guess = last trial of the step) gives the same answer in fewer iterations
    cold = big.solve(E2 * 1.001, s1)
    warm = big.solve(E2 * 1.001, s1, guess=s2)
    assert np.allclose(warm[0], cold[0], rtol=0, atol=1e-9 * abs(S).max())
    assert warm[3]["iterations"] < cold[3]["iterations"]
    big.destroy()
    one.destroy()


def _cfg(outdir, **over):
    base = {
        "macro": {"geometry": "plate_with_hole", "size": 10.0, "hole_radius": 3.0, "cells": [4, 2],
                  "displacement": 0.03, "steps": 3},
        "micro": {"model": "voxel", "voxels": 6, "microstructure": "particle", "volume_fraction": 0.3,
                  "matrix": {"E": 70e3, "nu": 0.33, "sigma_y": 100.0, "H": 500.0},
                  "particle": {"E": 400e3, "nu": 0.2}},
        "pool": {"group_size": 1, "balance": "cost", "cost_measure": "iterations"},
        "output": {"dir": outdir, "png": False, "checkpoint_every": 1},
    }
    return fe2_input(base, over)


@pytest.mark.mpi
def test_fe2_distributed_equals_direct_and_restarts_across_group_sizes(comm, shared_tmp):
    """FE² with solver = "distributed" on one group of all ranks equals the direct-solver run
    (serial oracle on COMM_SELF); a run stopped after step 2 on that group restarts on groups of
    one rank and finishes with the same history."""
    from hpcmsm.fe2.driver import run_fe2

    ref = run_fe2(_cfg(os.path.join(shared_tmp, f"direct{comm.rank}")), MPI.COMM_SELF, quiet=True)
    dist = {"solver": "distributed"}
    s = run_fe2(_cfg(os.path.join(shared_tmp, "dist"), micro=dist, pool={"group_size": comm.size}), comm,
                quiet=True)
    a, b = history(s), history(ref)
    for key in ("reaction", "external_work", "stored_energy", "dissipation", "rve_reused"):
        assert np.allclose(a[key], b[key], rtol=1e-8, atol=1e-12), key
    assert s["audit_passed"], s["audit"]
    assert a["dissipation"][-1] > 0
    out = os.path.join(shared_tmp, "cut")
    os.environ["HPCMSM_FE2_STOP_AFTER"] = "2"
    try:
        part = run_fe2(_cfg(out, micro=dist, pool={"group_size": comm.size}), comm, quiet=True)
    finally:
        del os.environ["HPCMSM_FE2_STOP_AFTER"]
        signals.reset()                  # the hook's stop request must not stop the restart
    assert part.get("stopped")
    s2 = run_fe2(_cfg(out, micro=dist, pool={"group_size": 1}), comm, quiet=True, restart=True)
    c = history(s2)
    assert len(c["reaction"]) == len(b["reaction"])
    for key in ("reaction", "external_work", "stored_energy", "dissipation"):
        assert np.allclose(c[key], b[key], rtol=1e-8, atol=1e-12), key


def test_distributed_solver_input_errors():
    base = {"micro": {"solver": "distributed"}}
    with pytest.raises(ConfigError, match="micro.solver"):
        from_dict(FE2Input, {**base, "macro": {"kinematics": "finite"},
                             "micro": {"solver": "distributed", "matrix": {"model": "neo_hookean"},
                                       "particle": {"model": "neo_hookean"}}})
    with pytest.raises(ConfigError, match="micro.solver"):
        from_dict(FE2Input, {"micro": {"solver": "distributed", "bc": "tubc"}})
    with pytest.raises(ConfigError, match="micro.solver"):
        from_dict(FE2Input, {"micro": {"solver": "distributed", "model": "point"}})
    from hpcmsm.materials.hyperelastic import NeoHookean

    with pytest.raises(InputError, match="small strain only"):
        DistributedRVE(np.zeros((4, 4), int), [NeoHookean(2, 1e3, 0.3)], MPI.COMM_SELF)
    with pytest.raises(InputError, match="periodic or kubc"):
        DistributedRVE(np.zeros((4, 4), int), [LinearElastic.isotropic(2, 1e3, 0.3)], MPI.COMM_SELF, bc="tubc")
    with pytest.raises(InputError, match="3D but the voxel grid is 2D"):      # same checks as VoxelRVE
        DistributedRVE(np.zeros((4, 4), int), [LinearElastic.isotropic(3, 1e3, 0.3)], MPI.COMM_SELF)
    with pytest.raises(InputError, match="phase labels"):
        DistributedRVE(np.full((4, 4), 2), [LinearElastic.isotropic(2, 1e3, 0.3)], MPI.COMM_SELF)
