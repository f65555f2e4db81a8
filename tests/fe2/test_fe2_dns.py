"""FE² against a direct numerical simulation (DNS) of the resolved periodic microstructure:
the difference in energy shrinks as the scale ratio ε = ℓ/L decreases (fast 2-size version of
benchmarks/fe2_dns_trend.py; the benchmark runs more sizes and the plastic case)."""
import importlib.util
import os

import numpy as np
from mpi4py import MPI

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _bench():
    spec = importlib.util.spec_from_file_location("fe2_dns_trend", os.path.join(ROOT, "benchmarks", "fe2_dns_trend.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fe2_minus_dns_shrinks_with_scale_ratio():
    b = _bench()
    from hpcmsm.fe2.macro import MacroProblem, box_mesh
    from hpcmsm.fe2.pool import HomogenizedMaterial, RVEPool
    from hpcmsm.fe2.rve import VoxelRVE
    from hpcmsm.homogenization.microstructure import inclusion_array
    from hpcmsm.materials.base import LinearElastic

    comm = MPI.COMM_SELF
    n, delta = 8, 0.004
    lab = inclusion_array((n, n), 0.25).labels
    mats = [LinearElastic.isotropic(2, 70e3, 0.33), LinearElastic.isotropic(2, 400e3, 0.2)]
    mesh = box_mesh([1.0, 1.0], [12, 12])
    p0 = MacroProblem(comm, mesh, [], b.bcs_for(mesh, delta))
    pool = RVEPool(comm, lambda sub: VoxelRVE(lab, mats, sub), p0.nqp_global, p0.qp_owner)
    hm = HomogenizedMaterial(pool, p0.qp_ids, 2)
    p0.destroy()
    W_fe2 = b.solve(comm, mesh, [(hm, np.arange(len(mesh.cells)))], delta, 1)[-1]
    errs = []
    for N in (2, 4):
        nn = N * n
        dmesh = box_mesh([1.0, 1.0], [nn, nn])
        e = np.arange(nn * nn)
        phase = lab[(e % nn) % n, (e // nn) % n]
        W = b.solve(comm, dmesh, [(mats[k], np.flatnonzero(phase == k)) for k in range(2)], delta, 1)[-1]
        errs.append(abs(W - W_fe2) / W)
    assert errs[1] < 0.75 * errs[0], errs
    assert errs[1] < 0.01
