"""The HPC probes and the scaling harness: the stencil kernel against its discrete eigenmode at
every rank count, STREAM/MPI probes compute what they claim, -log_view and JSON timings parse,
and the harness produces its table and plots for a real (tiny) strong+weak sweep."""
import json
import os

import numpy as np
import pytest

from hpcmsm.bench import scaling
from hpcmsm.bench.mpiprobe import hockney_fit
from hpcmsm.bench.stencil import decay_factor, heat_update, mode


def test_heat_update_matches_loop_reference():
    rng = np.random.default_rng(1)
    ul = rng.random((7, 9))
    out = np.empty((5, 7))
    heat_update(ul, 0.1, 0.15, out)
    ref = np.empty_like(out)
    for j in range(1, 6):
        for i in range(1, 8):
            c = ul[j, i]
            ref[j - 1, i - 1] = c + 0.1 * (ul[j, i + 1] + ul[j, i - 1] - 2 * c) + 0.15 * (ul[j + 1, i] + ul[j - 1, i] - 2 * c)
    np.testing.assert_allclose(out, ref, rtol=1e-14)


def test_eigenmode_growth_factor():
    nx, ny = 13, 17
    rx, ry, g = decay_factor(nx, ny, 0.4)
    u = mode(nx, ny, 0, nx, 0, ny)
    ul = np.zeros((ny + 2, nx + 2))
    ul[1:-1, 1:-1] = u
    out = np.empty_like(u)
    heat_update(ul, rx, ry, out)
    np.testing.assert_allclose(out, g * u, atol=1e-15)
    assert 0 < g < 1 and abs(rx + ry - 0.2) < 1e-14   # dt = cfl/(2/hx²+2/hy²)


@pytest.mark.mpi
def test_stencil_kernel_rank_independent(comm, shared_tmp):
    """DMDA halo exchange + update on any decomposition gives g^k times the mode; a checkpoint
    written mid-run restarts to the same field."""
    from hpcmsm.bench.stencil import run_stencil

    ck = os.path.join(shared_tmp, "st.h5")
    r = run_stencil(comm, 31, 23, 40, checkpoint=ck, ckpt_every=25)
    assert r["max_error_vs_mode"] < 1e-13 and r["steps"] == 40
    assert r["norms"][-1][0] == 40
    # norm of g^40 * mode, computed serially
    u = mode(31, 23, 0, 31, 0, 23) * decay_factor(31, 23, 0.4)[2] ** 40
    assert abs(r["norms"][-1][1] - np.linalg.norm(u)) < 1e-12
    r2 = run_stencil(comm, 31, 23, 40, checkpoint=ck, restart=True)   # from step 25
    assert r2["steps_run"] == 15 and r2["max_error_vs_mode"] < 1e-13
    assert set(r["timers"]) >= {"halo", "compute", "norm", "checkpoint"}


@pytest.mark.mpi
def test_stream_and_mpi_probes(comm):
    from hpcmsm.bench.mpiprobe import allreduce_latency, hockney_fit, pingpong
    from hpcmsm.bench.stream import stream

    s = stream(comm, n=1 << 16, ntimes=2)
    assert s["check"] and all(v > 0 for v in s["GBs"].values())
    lat = allreduce_latency(comm, counts=(1,), reps=50)   # raises if the sum is wrong
    assert 0 < lat[1] < 1.0
    pp = pingpong(comm, sizes=(8, 4096), reps=20)
    assert (comm.size < 2) == (pp == {})


def test_hockney_fit_recovers_model():
    alpha, beta = 2e-6, 5e9
    times = {m: alpha + m / beta for m in (8, 512, 65536, 1 << 20)}
    a, b = hockney_fit(times)
    assert abs(a / alpha - 1) < 1e-8 and abs(b / beta - 1) < 1e-8


LOG = """Time (sec):           2.033e-01     1.047   1.987e-01
Summary of Stages:   ----- Time ------  ----- Flop ------  --- Messages ---  -- Message Lengths --  -- Reductions --
                        Avg     %Total     Avg     %Total    Count   %Total     Avg         %Total    Count   %Total
 0:      Main Stage: 1.7466e-01  87.9%  0.0000e+00   0.0%  0.000e+00   0.0%  0.000e+00        0.0%  1.500e+01  42.9%
 2:            halo: 5.9521e-03   3.0%  0.0000e+00   0.0%  1.040e+02 100.0%  1.554e+03      100.0%  1.000e+00   2.9%
------------------------------------------------------------------------------------------------------------------------
--- Event Stage 2: halo

VecScatterBegin       50 1.0 9.4599e-03 8.2 0.00e+00 0.0 1.0e+02 1.6e+03 1.0e+00  3  0 100 100  3  89  0 100 100 100     0
------------------------------------------------------------------------------------------------------------------------
Object Type          Creations   Destructions. Reports information only for process 0.
"""


def test_parse_log_view_and_timer_tables():
    d = scaling.parse_log_view(LOG)
    assert d["stages"] == {"Main Stage": 0.17466, "halo": 0.0059521} and d["total_s"] == 0.2033
    ev = d["events"]["halo"]["VecScatterBegin"]
    assert ev["count"] == 50 and ev["max_s"] == 9.4599e-03 and ev["messages"] == 100.0
    doc = {"a": 1, "run": {"timers": {"solve": {"max": 2.0, "mean": 1.5, "calls": 3}}}}
    assert scaling.find_timer_tables(doc) == {"solve": {"max": 2.0, "mean": 1.5, "calls": 3}}
    assert scaling.eval_params(["nx=round(100*n**0.5)", "ny=2*nx"], 4) == {"nx": 200, "ny": 400}


def test_analyse_speedup_efficiency():
    recs = [{"ranks": n, "returncode": 0, "wall_s": 1.0, "params": {}, "timers": {"a": {"max": t, "mean": t}}}
            for n, t in ((1, 8.0), (2, 4.0), (4, 4.0))]
    out = scaling.analyse(recs, "strong", None, cores=2)
    assert [r["speedup"] for r in out] == [1.0, 2.0, 2.0]
    assert [r["efficiency"] for r in out] == [1.0, 1.0, 0.5] and out[2]["oversubscribed"]
    out = scaling.analyse([dict(r) for r in recs], "weak", None, cores=2)
    assert [r["efficiency"] for r in out] == [1.0, 2.0, 2.0]


def test_harness_end_to_end(tmp_path):
    """Strong and weak sweeps of the stencil at 1 and oversubscribed 3 ranks: every case
    verified (the command exits 1 if its eigenmode check fails), PETSc stages and JSON phases
    gathered, weak sizes follow the rule, table and PNGs written."""
    out = tmp_path / "sc"
    rc = scaling.main(["--cmd", "bench stencil --nx {nx} --steps 20 --json {json}", "--ranks", "1", "3",
                       "--strong", "nx=60", "--weak", "nx=round(40*n**0.5)", "--out", str(out)])
    assert rc == 0
    doc = json.loads((out / "scaling.json").read_text())
    weak = doc["results"]["weak"]
    assert [r["params"]["nx"] for r in weak] == [40, 69]
    for mode in ("strong", "weak"):
        for r in doc["results"][mode]:
            assert r["returncode"] == 0
            assert {"halo", "compute"} <= set(r["timers"]) <= set(r["petsc"]["stages"]) | {"checkpoint"}
            assert r["metric_name"] == "total" and r["metric"] > 0
            summ = json.loads((out / mode / f"n{r['ranks']}" / "summary.json").read_text())
            assert summ["ranks"] == r["ranks"] and summ["max_error_vs_mode"] < 1e-12
        assert doc["results"][mode][0]["speedup"] == 1.0
        assert (out / f"{mode}.png").stat().st_size > 10000
    md = (out / "scaling.md").read_text()
    assert "| 3* |" in md or doc["cores"] >= 3


def test_launcher_choice(monkeypatch, tmp_path):
    """Scripts are launched like ./run does: HPCMSM_MPIRUN, else srun inside SLURM, else mpirun."""
    monkeypatch.delenv("HPCMSM_MPIRUN", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert scaling.mpi_launcher(3) == ["mpirun", "-n", "3"]
    fake = tmp_path / "srun"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    assert scaling.mpi_launcher(4) == ["srun", "-n", "4"]
    monkeypatch.setenv("HPCMSM_MPIRUN", "mpiexec --bind-to core")
    assert scaling.mpi_launcher(2) == ["mpiexec", "--bind-to", "core", "-n", "2"]
