"""The performance model's building blocks against hand-computed values and its limits."""
import math

import pytest

from hpcmsm.bench.model import (CahnHilliardModel, FE2Model, Machine, calibrate_ch, machine_from_probes,
                                scaling_table)

M = Machine(alpha=2e-6, beta=4e9, allreduce_stage=3e-6, stream_node=20e9, cores_per_node=4,
            alpha_net=1e-6, beta_net=10e9, allreduce_stage_net=2e-6)


def test_collectives_hockney_and_log_stages():
    assert M.allreduce(1) == 0 and M.allgather(1, 1e6) == 0
    assert M.allreduce(4) == pytest.approx(2 * (3e-6 + 8 / 4e9))            # intra-node, 2 stages
    assert M.allreduce(1024) == pytest.approx(10 * (2e-6 + 8 / 10e9))       # network, 10 stages
    assert M.p2p(2, 4e6) == pytest.approx(2e-6 + 1e-3)
    assert M.allgather(4, 8e6) == pytest.approx(2 * 2e-6 + 8e6 * 3 / 4 / 4e9)
    assert M.bandwidth_share(2) == 10e9 and M.bandwidth_share(1000) == 5e9


def test_ch_halo_surface_to_volume():
    ch = CahnHilliardModel(n_cells=1024**2, dim=2, dof=2)
    assert ch.halo(1, M) == 0
    # 2D, 16 ranks: 256x256 patch, 4 faces of 256 cells x 2 dof x 8 B; beyond 4 cores/node the
    # network latency, and the link shared by √4 = 2 boundary ranks (10/2 GB/s, capped at intra 4 GB/s)
    assert ch.halo(16, M) == pytest.approx(4 * (1e-6 + 256 * 2 * 8 / 4e9))
    ch3 = CahnHilliardModel(n_cells=128**3, dim=3)
    assert ch3.halo(8, M) == pytest.approx(6 * (1e-6 + 64**2 * 2 * 8 / 4e9))
    wide = Machine(alpha=2e-6, beta=40e9, cores_per_node=16, alpha_net=1e-6, beta_net=12e9)
    assert wide.p2p(64, 3e6) == pytest.approx(1e-6 + 3e6 / 3e9)          # 12 GB/s / √16
    assert wide.bulk_beta(64) == pytest.approx(12e9 / 16) and wide.bulk_beta(16) == 40e9


def test_ch_serial_has_no_communication_and_allgather_fft_saturates():
    ch = CahnHilliardModel(n_cells=512**2, pc="allgather-fft")
    p1 = ch.parts(1, M)
    assert p1["communication"] == 0
    assert p1["total"] == pytest.approx(sum(p1[k] for k in ("residual", "jacobian", "matvec", "pc", "krylov_vectors+reductions")))
    floor = ch.n_newton * ch.n_krylov * ch.c_fft * ch.n_cells * math.log2(ch.n_cells)
    rows = scaling_table(ch, M, [1, 4, 64, 4096, 100000])
    assert all(r["total"] > floor for r in rows)                 # Amdahl: the replicated FFT stays
    assert rows[-1]["efficiency"] < 0.01
    mg = scaling_table(CahnHilliardModel(n_cells=512**2, pc="mg"), M, [1, 4, 64])
    assert mg[2]["total"] < mg[1]["total"] < mg[0]["total"]


def test_weak_scaling_ideal_without_communication_costs():
    free = Machine(alpha=0, beta=1e30, allreduce_stage=0, stream_node=1e30, cores_per_node=10**6)
    rows = scaling_table(CahnHilliardModel(n_cells=1e4, pc="mg"), free, [1, 8, 512], weak={"n_cells": 1e4})
    assert [r["efficiency"] for r in rows] == pytest.approx([1, 1, 1])


def test_fe2_load_imbalance_and_group_limit():
    f = FE2Model(n_rve=10, group_size=1, t_rve1=1.0, macro_dofs=0, c_macro_qp=0)
    assert f.parts(1, M)["micro"] == 10.0
    assert f.parts(5, M)["micro"] == 2.0 and f.parts(5, M)["idle_fraction"] == pytest.approx(0)
    assert f.parts(4, M)["micro"] == 3.0                       # ceil(10/4): one group does 3
    assert f.parts(4, M)["idle_fraction"] == pytest.approx(1 - 2.5 / 3)
    assert f.parts(20, M)["micro"] == f.parts(10, M)["micro"] == 1.0   # more groups than RVEs: idle
    g4 = FE2Model(n_rve=10, group_size=4, t_rve1=1.0, e_group=0.5, macro_dofs=0, c_macro_qp=0)
    assert g4.parts(40, M)["micro"] == pytest.approx(1.0 / (4 * 0.5))


def test_calibrate_ch_recovers_costs_and_iterations():
    n, steps = 1000, 4
    # synthetic -log_view: 2 Newton its/step, 5 Krylov its/Newton
    events = {"SNESFunctionEval": {"count": 12, "max_s": 12 * n * 2e-7},
              "SNESJacobianEval": {"count": 8, "max_s": 8 * n * 5e-7},
              "MatMult": {"count": 40, "max_s": 40 * n * 6e-8},
              "PCApply": {"count": 40, "max_s": 40 * n * math.log2(n) * 3e-8},
              "VecMDot": {"count": 40, "max_s": 40 * n * 1e-8}}
    ch = calibrate_ch({"events": {"Main Stage": events}}, n, steps)
    assert ch.n_newton == 2 and ch.n_krylov == 5
    assert ch.c_res == pytest.approx(2e-7) and ch.c_jac == pytest.approx(5e-7)
    assert ch.c_matvec == pytest.approx(6e-8) and ch.c_fft == pytest.approx(3e-8) and ch.c_vec == pytest.approx(1e-8)


def test_machine_from_probe_json():
    m = machine_from_probes({"GBs": {"copy": 12.5}}, {"ranks": 4, "latency_s": 1e-6, "bandwidth_Bs": 3e9,
                                                      "allreduce_s": {"1": 6e-6}}, cores_per_node=64)
    assert m.stream_node == 12.5e9 and m.alpha == 1e-6 and m.beta == 3e9
    assert m.allreduce_stage == pytest.approx(3e-6) and m.cores_per_node == 64
