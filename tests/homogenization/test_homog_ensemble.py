"""SVE ensembles on subcommunicators, statistics, RVE-size study and the rve-study command."""
import json
import os

import numpy as np
import pytest

from hpcmsm.homogenization import microstructure as ms
from hpcmsm.homogenization.ensemble import lpt_assignment, power_fit, run_tasks, sample_stats, size_for_tolerance

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EX = os.path.join(ROOT, "examples")


def _petsc():
    from hpcmsm.parallel import init_petsc

    init_petsc()


def test_lpt_and_fits():
    owner = lpt_assignment(np.array([8.0, 1, 1, 1, 1, 1, 1, 1, 1]), 2)
    loads = np.bincount(owner, weights=[8.0, 1, 1, 1, 1, 1, 1, 1, 1])
    assert sorted(loads) == [8.0, 8.0]
    L = np.array([4.0, 8, 16, 32])
    f = power_fit(L, 3.0 * L ** -2.0)
    assert f["exponent"] == pytest.approx(-2.0) and f["a"] == pytest.approx(3.0)
    assert size_for_tolerance(f, 3.0 * 100.0 ** -2) == pytest.approx(100.0)
    s = sample_stats(np.array([1.0, 2.0, 3.0, 4.0]), 0.95)
    assert s["mean"] == 2.5 and s["var"] == pytest.approx(5 / 3) and s["ci_half"] == pytest.approx(3.182446 * np.sqrt(5 / 12), rel=1e-5)


def test_volume_fraction_variance_decays_as_L_minus_d():
    """Independent voxels: Var[φ_L] = p(1-p)/L^d exactly; the fitted exponent is -d within error."""
    p, M = 0.4, 400
    for d, sizes in ((2, (4, 8, 16)), (3, (3, 5, 8))):
        var = []
        for L in sizes:
            phis = [ms.independent_voxels((L,) * d, p, seed=21, index=i).volume_fractions(2)[1] for i in range(M)]
            v = np.var(phis, ddof=1)
            th = p * (1 - p) / L ** d
            assert abs(v - th) < 4 * th * np.sqrt(2 / (M - 1))
            var.append(v)
        f = power_fit(np.array(sizes, float), np.array(var))
        assert abs(f["exponent"] + d) < 0.25, f


@pytest.mark.mpi
def test_ensemble_subcomms_reproducible_and_match_serial(comm):
    """SVEs farmed over groups of 1..size ranks give the same tensors as a serial solve of the
    regenerated (seed, index) microstructure, and the ensemble φ variance matches p(1-p)/N."""
    from mpi4py import MPI

    from hpcmsm.homogenization.phases import LinearConductor
    from hpcmsm.homogenization.rve import RVEProblem

    _petsc()
    phases = [LinearConductor.isotropic(2, 1.0), LinearConductor.isotropic(2, 8.0)]

    def solve(task, sub):
        micro = ms.independent_voxels((8, 8), 0.5, seed=3, index=task)
        pr = RVEProblem(micro, phases, "periodic", sub)
        C, info = pr.effective_tensor()
        pr.destroy()
        return {"C": C.tolist(), "vf": float(micro.volume_fractions(2)[1]), "sub": sub.size}

    ntask = 6
    for gs in [g for g in (1, 2, 3) if comm.size % g == 0]:
        res = run_tasks(comm, gs, list(range(ntask)), [1.0] * ntask, solve)
        assert all(r["sub"] == gs for r in res)
        for t in (0, ntask - 1):
            pr = RVEProblem(ms.independent_voxels((8, 8), 0.5, seed=3, index=t), phases, "periodic", MPI.COMM_SELF)
            Cs, _ = pr.effective_tensor()
            pr.destroy()
            assert np.allclose(res[t]["C"], Cs, rtol=1e-9)
    # variance of φ over a larger (cheap) ensemble, farmed the same way
    M, N, p = 300, 64, 0.5
    vf = run_tasks(comm, 1, list(range(M)), [1.0] * M,
                   lambda t, sub: float(ms.independent_voxels((8, 8), p, seed=17, index=t).volume_fractions(2)[1]))
    th = p * (1 - p) / N
    assert abs(np.var(vf, ddof=1) - th) < 4 * th * np.sqrt(2 / (M - 1))


def _study_cfg(shared_tmp, **study):
    from hpcmsm.config import from_dict, read_toml
    from hpcmsm.homogenization.study import RVEStudyInput

    data, text = read_toml(os.path.join(EX, "rve_study_inclusions_2d.toml"))
    data["study"].update(study)
    data["output"]["dir"] = os.path.join(shared_tmp, "study")
    return from_dict(RVEStudyInput, data, file="rve_study.toml"), text


@pytest.mark.mpi
def test_rve_study_example_tiny_and_restart(comm, shared_tmp, capsys):
    from hpcmsm.homogenization.study import rve_study
    from hpcmsm.parallel import Log

    _petsc()
    cfg, text = _study_cfg(shared_tmp, sizes=[8, 12], realizations=3, group_size=1, contrasts=[5.0, 20.0])
    s = rve_study(cfg, comm, input_text=text, log=Log(comm, quiet=True))
    assert s["_audit"].passed, s["_audit"].summary()
    blocks = s["per_contrast"]
    assert len(blocks) == 2 and [e["L"] for e in blocks[0]["sizes"]] == [8, 12]
    # the BC gap grows with contrast at every size; KUBC ≥ TUBC on average
    g5 = [e["gap_kubc_tubc"]["mean"] for e in blocks[0]["sizes"]]
    g20 = [e["gap_kubc_tubc"]["mean"] for e in blocks[1]["sizes"]]
    assert all(a > 0 for a in g5) and all(b > a for a, b in zip(g5, g20))
    for e in blocks[0]["sizes"]:
        st = e["bc"]["periodic"]
        assert st["ci"][0] <= st["mean"] <= st["ci"][1] and st["n"] == 3
    comm.Barrier()
    out = cfg.output.dir
    for f in ("summary.json", "rve_study.h5", "rve_convergence.png", "rve_gap_contrast.png", "rve_study.ckpt.h5"):
        assert os.path.exists(os.path.join(out, f)), f
    # restart: nothing is recomputed and the statistics are identical
    s2 = rve_study(cfg, comm, input_text=text, restart=True, log=Log(comm))
    if comm.rank == 0:
        assert "restarting, 12/12 SVEs already done" in capsys.readouterr().out
    assert s2["per_contrast"][1]["sizes"][1]["bc"]["kubc"]["mean"] == blocks[1]["sizes"][1]["bc"]["kubc"]["mean"]


@pytest.mark.mpi
def test_rve_study_independent_voxels_variance_exponent(comm, shared_tmp):
    """Finite-range (independent-voxel) media: Var[k_PBC] decays like L^-d (here d = 2)."""
    from hpcmsm.config import from_dict
    from hpcmsm.homogenization.study import RVEStudyInput, rve_study
    from hpcmsm.parallel import Log

    _petsc()
    data = {"problem": {"kind": "conductivity", "bc": ["periodic"]},
            "microstructure": {"type": "independent_voxels", "probability": 0.5, "seed": 5},
            "phases": [{"k": 1.0}, {"k": 4.0}],
            "study": {"dim": 2, "sizes": [4, 8, 16], "realizations": 24},
            "output": {"dir": os.path.join(shared_tmp, "iv"), "png": False}}
    cfg = from_dict(RVEStudyInput, data, file="iv.toml")
    s = rve_study(cfg, comm, log=Log(comm, quiet=True))
    f = s["per_contrast"][0]["fits"]
    assert abs(f["periodic"]["variance_fit"]["exponent"] + 2) < 0.6, f["periodic"]
    assert abs(f["volume_fraction_variance_fit"]["exponent"] + 2) < 0.6


def test_rve_study_cli(hpcmsm_cli, tmp_path):
    text = open(os.path.join(EX, "rve_study_inclusions_2d.toml")).read()
    text = text.replace("sizes = [12, 18, 24, 36, 48]", "sizes = [8, 12]").replace("realizations = 12", "realizations = 2")
    text = text.replace("contrasts = [5.0, 20.0]", "contrasts = [10.0]")
    assert "sizes = [8, 12]" in text and "realizations = 2" in text
    (tmp_path / "s.toml").write_text(text)
    r = hpcmsm_cli(["rve-study", str(tmp_path / "s.toml"), "--out", str(tmp_path / "o"), "--quiet"], n=2, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    s = json.load(open(tmp_path / "o" / "summary.json"))
    assert s["ranks"] == 2 and s["audit"]["passed"]
    bad = text.replace("group_size = 1", "group_size = 3")
    (tmp_path / "b.toml").write_text(bad)
    r = hpcmsm_cli(["rve-study", str(tmp_path / "b.toml")], n=2, timeout=120)
    assert r.returncode == 2 and r.stderr.count("does not divide the 2 MPI ranks") == 1, r.stderr


@pytest.mark.mpi
def test_docs_snippet(comm):
    """The Python example in docs/homogenization.md runs and its assertions hold."""
    import re

    text = open(os.path.join(ROOT, "docs", "homogenization.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for b in blocks:
        exec(compile(b, "docs/homogenization.md", "exec"), {})
