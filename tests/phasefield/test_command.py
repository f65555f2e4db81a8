"""``hpcmsm phasefield``: examples at tiny size, restart after a kill, PFHub 1a at 1/2/3 ranks,
bad input."""
import csv
import json
import os
import sys

import numpy as np
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = sorted(f for f in os.listdir(os.path.join(ROOT, "examples")) if f.startswith("phasefield_"))


def _dump(d: dict) -> str:
    """Minimal TOML writer for the nested tables used here."""
    out = []
    for table, kv in d.items():
        out.append(f"[{table}]")
        for k, v in kv.items():
            if isinstance(v, dict):
                continue
            out.append(f"{k} = {json.dumps(v)}")
        for k, v in kv.items():
            if isinstance(v, dict):
                out.append(f"[{table}.{k}]")
                out += [f"{kk} = {json.dumps(vv)}" for kk, vv in v.items()]
    return "\n".join(out) + "\n"


def _tiny(example: str, outdir: str, **time) -> str:
    with open(os.path.join(ROOT, "examples", example), "rb") as fh:
        cfg = tomllib.load(fh)
    p = cfg["problem"]
    d = len(p["shape"])
    n = 24 if d == 2 else 12
    scale = n / p["shape"][0]
    p["shape"] = [n] * d
    p["lengths"] = [L * scale for L in p["lengths"]]
    if "radius" in cfg.get("initial", {}):
        cfg["initial"]["radius"] *= scale
    cfg["time"].update({"t_end": 5.0, "output_times": [1.0, 5.0]})
    cfg["time"].update(time)
    cfg["output"] = {"dir": outdir, "checkpoint_every": 4}
    path = os.path.join(outdir + ".toml")
    with open(path, "w") as fh:
        fh.write(_dump(cfg))
    return path


def _history(outdir):
    with open(os.path.join(outdir, "history.csv")) as fh:
        rows = list(csv.DictReader(fh))
    return np.array([[float(r[k]) for k in ("time", "free_energy", "mass", "dt")] for r in rows])


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_run_at_tiny_size(example, tmp_path, hpcmsm_cli):
    out = str(tmp_path / "out")
    n = 2 if example in ("phasefield_pfhub1a.toml", "phasefield_ac_sphere.toml") else 1
    r = hpcmsm_cli(["phasefield", _tiny(example, out), "--quiet"], n=n, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    with open(os.path.join(out, "phasefield_summary.json")) as fh:
        s = json.load(fh)
    assert s["status"] == "done" and s["audit"]["passed"] and s["t"] == pytest.approx(5.0)
    H = _history(out)
    assert np.all(np.diff(H[:, 1]) <= 1e-11 * abs(H[0, 1]))  # F never increases
    assert os.path.exists(os.path.join(out, "phasefield.xdmf"))
    with open(os.path.join(out, "free_energy.csv")) as fh:
        assert fh.readline().strip() == "time,free_energy"
    # snapshots at the requested times
    import h5py

    times = []
    for f in sorted(os.listdir(out)):
        if f.startswith("phasefield_0") and f.endswith(".h5"):
            with h5py.File(os.path.join(out, f), "r") as h:
                times.append(float(h.attrs["time"]))
    assert np.allclose(times, [0.0, 1.0, 5.0])


def test_restart_after_kill_reproduces_uninterrupted_run(tmp_path, hpcmsm_cli):
    ref = str(tmp_path / "ref")
    r = hpcmsm_cli(["phasefield", _tiny("phasefield_pfhub1a.toml", ref, t_end=30.0, output_times=[10.0, 30.0]),
                    "--quiet"], n=2, timeout=300)
    assert r.returncode == 0, r.stderr
    run = str(tmp_path / "run")
    cfg = _tiny("phasefield_pfhub1a.toml", run, t_end=30.0, output_times=[10.0, 30.0])
    r = hpcmsm_cli(["phasefield", cfg, "--quiet", "--kill-at-step", "10"], n=2, timeout=300)
    assert r.returncode != 0  # killed (SIGKILL on rank 0) after the step-8 checkpoint
    killed = _history(run)
    assert killed[-1, 0] < 30.0
    r = hpcmsm_cli(["phasefield", cfg, "--quiet", "--restart"], n=2, timeout=300)
    assert r.returncode == 0, r.stderr
    A, B = _history(ref), _history(run)
    assert A.shape == B.shape
    assert np.array_equal(A, B)  # same rank count: the continuation is identical to the last bit
    # and on another rank count the restart continues to round-off
    r = hpcmsm_cli(["phasefield", cfg, "--quiet", "--kill-at-step", "10"], n=2, timeout=300)
    run3 = str(tmp_path / "run3")
    os.makedirs(run3)
    os.replace(os.path.join(run, "phasefield.ckpt.h5"), os.path.join(run3, "phasefield.ckpt.h5"))
    r = hpcmsm_cli(["phasefield", cfg, "--quiet", "--restart", "--out", run3], n=3, timeout=300)
    assert r.returncode == 0, r.stderr
    C = _history(run3)
    assert C.shape == A.shape and np.allclose(C, A, rtol=1e-9, atol=0)


def test_pfhub_1a_same_energy_at_1_2_3_ranks(tmp_path, hpcmsm_cli):
    """The official 200×200 problem for a short interval: F(t) agrees at 1, 2, 3 ranks and F(0)
    is the discrete energy of the PFHub initial condition."""
    with open(os.path.join(ROOT, "examples", "phasefield_pfhub1a.toml"), "rb") as fh:
        cfg = tomllib.load(fh)
    hist = []
    for n in (1, 2, 3):
        out = str(tmp_path / f"n{n}")
        cfg["time"].update({"t_end": 2.0, "output_times": [1.0, 2.0]})
        cfg["output"] = {"dir": out, "png": False}
        path = str(tmp_path / f"n{n}.toml")
        with open(path, "w") as fh:
            fh.write(_dump(cfg))
        r = hpcmsm_cli(["phasefield", path, "--quiet"], n=n, timeout=300)
        assert r.returncode == 0, r.stderr
        hist.append(_history(out))
    for H in hist[1:]:
        assert H.shape == hist[0].shape
        assert np.allclose(H[:, 1], hist[0][:, 1], rtol=1e-10, atol=0)
        assert np.allclose(H[:, 2], hist[0][:, 2], rtol=1e-13)
    assert hist[0][0, 1] == pytest.approx(319.1570557, rel=1e-8)  # discrete F(0), periodic grid


@pytest.mark.parametrize("patch,message", [
    ({"problem": {"mobility": -1.0}}, "'problem.mobility': expected a positive number"),
    ({"problem": {"kappa": 0.0}}, "'problem.kappa': expected a positive number"),
    ({"problem": {"shape": [2, 40]}}, "grid too small"),
    ({"energy": {"kind": "regular_solution", "theta": 1.0, "chi": 2.5},
      "initial": {"kind": "noise", "c0": 0.5, "epsilon": 0.6}}, "outside the domain"),
    ({"energy": {"kind": "landau", "rho": 5.0}}, "'energy.rho': does not apply"),
    ({"petsc": {"macro": {"ksp_type": "cg"}}}, "prefixes of the phasefield command"),
])
def test_bad_input_is_reported_cleanly(tmp_path, hpcmsm_cli, patch, message):
    cfg = {"problem": {"shape": [40, 40], "lengths": [40.0, 40.0]}, "initial": {"kind": "noise"},
           "time": {"t_end": 1.0}, "output": {"dir": str(tmp_path / "o")}}
    for k, v in patch.items():
        cfg.setdefault(k, {}).update(v)
    path = str(tmp_path / "bad.toml")
    with open(path, "w") as fh:
        fh.write(_dump(cfg))
    r = hpcmsm_cli(["phasefield", path], n=2, timeout=120)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and r.stderr.count("error:") == 1


def test_controller_that_cannot_progress_stops_cleanly_with_checkpoint(tmp_path, hpcmsm_cli):
    cfg = {"problem": {"shape": [24, 24], "lengths": [24.0, 24.0]}, "initial": {"kind": "noise", "epsilon": 0.05},
           "time": {"t_end": 10.0, "tol": 1e-13, "dt0": 0.5, "dt_min": 1e-3}, "output": {"dir": str(tmp_path / "o"), "png": False}}
    path = str(tmp_path / "stuck.toml")
    with open(path, "w") as fh:
        fh.write(_dump(cfg))
    r = hpcmsm_cli(["phasefield", path], n=2, timeout=300)
    assert r.returncode == 3, r.stderr
    assert "cannot make progress" in r.stderr
    assert os.path.exists(str(tmp_path / "o" / "phasefield.ckpt.h5"))
