"""Transient heat (backward Euler): decay of a sine mode against the exact solution, first-order
convergence in time, heat-balance audit; identical at 1, 2 and 3 ranks.  Checkpoint/restart of
``hpcmsm solve`` heat runs (killed, --max-steps, graceful stop with exit 75), same and other rank
counts, against the uninterrupted run."""
import numpy as np
import pytest


@pytest.mark.mpi
def test_sine_mode_decay_first_order_in_time(comm):
    from hpcmsm.fem import Dirichlet, HeatProblem, create_box

    kappa, rho_c, T = 0.5, 2.0, 0.2
    mesh = create_box(comm, (24, 2), cell="quadrilateral", degree=2)
    decay = np.exp(-np.pi ** 2 * kappa / rho_c * T)
    errs = []
    for nsteps in (4, 8, 16):
        prob = HeatProblem(mesh, kappa, rho_c, 0.0, [Dirichlet("xmin", 0.0), Dirichlet("xmax", 0.0)],
                           dt=T / nsteps, petsc_options={"ksp_rtol": "1e-12"})
        prob.set_initial(lambda x: np.sin(np.pi * x[:, 0]))
        for _ in range(nsteps):
            prob.step()
        x = mesh.points[:mesh.n_owned, 0]
        err = np.abs(prob.u.getArray(readonly=True) - decay * np.sin(np.pi * x)).max(initial=0.0)
        errs.append(comm.allreduce(err, op=__import__("mpi4py.MPI", fromlist=["MAX"]).MAX))
        audit = prob.finish_audit()
        assert audit.passed, audit.summary()
        prob.destroy()
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(rates - 1.0) < 0.15), (errs, rates)


# ---------------------------------------------------------------------------------------------
# checkpoint / restart of `hpcmsm solve` (heat): killed runs continue and reproduce the
# uninterrupted result, on the same and on another number of ranks
# ---------------------------------------------------------------------------------------------

def _heat_case(tmp_path, out):
    import os
    import shutil

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not (tmp_path / "meshes").exists():
        shutil.copytree(os.path.join(root, "examples", "meshes"), tmp_path / "meshes")
    text = open(os.path.join(root, "examples", "solve_heat_gmsh.toml")).read()
    text = text.replace("steps = 20", "steps = 9").replace("every = 5", "every = 3")
    text += '\n[petsc.macro]\nksp_rtol = 1e-12\nksp_atol = 1e-50\n'
    inp = tmp_path / "heat.toml"
    inp.write_text(text)
    return str(inp), str(tmp_path / out)


def _final(out, step=9):
    import h5py

    with h5py.File(f"{out}/macro_{step:06d}.h5", "r") as f:
        return f["fields/temperature"][...], float(f.attrs["time"])


def test_heat_restart_after_kill(tmp_path, hpcmsm_cli):
    import json

    inp, full = _heat_case(tmp_path, "full")
    r = hpcmsm_cli(["solve", inp, "--output", full, "--quiet"], n=2, timeout=300)
    assert r.returncode == 0, r.stderr
    ref, tref = _final(full)
    # killed (SIGKILL on rank 0) after step 7: the last checkpoint is step 6
    inp, run = _heat_case(tmp_path, "run")
    r = hpcmsm_cli(["solve", inp, "--output", run, "--quiet", "--kill-at-step", "7"], n=2, timeout=300)
    assert r.returncode != 0
    r = hpcmsm_cli(["solve", inp, "--output", run, "--restart"], n=2, timeout=300)
    assert r.returncode == 0 and "restarted from" in r.stdout and "at step 6" in r.stdout, r.stderr + r.stdout
    T, t = _final(run)
    assert t == tref and np.array_equal(T, ref)              # same ranks: identical to the last bit
    a, b = (json.load(open(f"{d}/summary.json")) for d in (full, run))
    assert a["ksp_iterations"] == b["ksp_iterations"] and b["audit"]["passed"]
    assert a["T_max"] == b["T_max"]
    # another rank count: kill at 2 ranks, restart at 3 (and output files share the natural order)
    inp, run3 = _heat_case(tmp_path, "run3")
    r = hpcmsm_cli(["solve", inp, "--output", run3, "--quiet", "--kill-at-step", "5"], n=2, timeout=300)
    assert r.returncode != 0
    r = hpcmsm_cli(["solve", inp, "--output", run3, "--restart"], n=3, timeout=300)
    assert r.returncode == 0 and "at step 3" in r.stdout, r.stderr + r.stdout
    T3, t3 = _final(run3)
    assert t3 == tref and np.allclose(T3, ref, rtol=0, atol=1e-10)
    T3_early, _ = _final(run3, 3)
    ref_early, _ = _final(full, 3)
    assert np.allclose(T3_early, ref_early, rtol=0, atol=1e-10)


def test_heat_max_steps_and_graceful_stop(tmp_path, hpcmsm_cli):
    import os
    import time

    inp, full = _heat_case(tmp_path, "full")
    r = hpcmsm_cli(["solve", inp, "--output", full, "--quiet"], n=1, timeout=300)
    assert r.returncode == 0, r.stderr
    ref, _ = _final(full)
    inp, run = _heat_case(tmp_path, "run")
    r = hpcmsm_cli(["solve", inp, "--output", run, "--max-steps", "4"], n=2, timeout=300)
    assert r.returncode == 0 and "stopped after --max-steps at step 4" in r.stdout, r.stderr + r.stdout
    assert not os.path.exists(f"{run}/macro_000009.h5")
    # a stop request (here: the HPCMSM_STOP_AT deadline, as SLURM's warning signal would) after
    # the next step: checkpoint, exit 75, then a restart finishes the run
    r = hpcmsm_cli(["solve", inp, "--output", run, "--restart"], n=3, timeout=300,
                   env={"HPCMSM_STOP_AT": str(time.time() - 1)})
    assert r.returncode == 75 and "stopped cleanly after step 5" in r.stderr, r.stderr + r.stdout
    r = hpcmsm_cli(["solve", inp, "--output", run, "--restart"], n=2, timeout=300)
    assert r.returncode == 0 and "at step 5" in r.stdout, r.stderr + r.stdout
    T, _ = _final(run)
    assert np.allclose(T, ref, rtol=0, atol=1e-10)
