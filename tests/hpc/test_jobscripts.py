"""SLURM job scripts under a simulated SLURM: stand-in sbatch/srun (tests/hpc/fake_slurm) set
the SLURM_* environment, record their command lines and run the job steps with mpirun.  Each
test checks the command lines the scripts produce *and* the results of a tiny real case."""
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import ROOT, clean_mpi_env

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_slurm")
JOBS = os.path.join(ROOT, "jobscripts")


@pytest.fixture
def slurm(tmp_path):
    """Environment with the stand-ins first on PATH; ``slurm.log()`` → recorded calls."""
    state = tmp_path / "slurm"
    state.mkdir()

    class S:
        dir = tmp_path
        env = clean_mpi_env({"PATH": FAKE + os.pathsep + os.environ["PATH"], "FAKE_SLURM_DIR": str(state),
                             "HPCMSM_HOME": ROOT})

        def log(self, prog=None):
            p = state / "log.jsonl"
            recs = [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []
            return [r for r in recs if prog is None or r["prog"] == prog]

        def rc(self, tag):
            p = state / f"job_{tag}.rc"
            return int(p.read_text()) if p.exists() else None

        def pid(self, tag):
            return int((state / f"job_{tag}.pid").read_text())

        def run(self, args, extra=None, timeout=300):
            return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=str(tmp_path),
                                  env={**self.env, **(extra or {})})

    for k in [k for k in S.env if k.startswith("SLURM")]:
        del S.env[k]
    return S()


def test_scripts_are_valid_bash_with_slurm_headers():
    for f in sorted(os.listdir(JOBS)):
        p = os.path.join(JOBS, f)
        assert subprocess.run(["bash", "-n", p]).returncode == 0, f
        if f.endswith(".sbatch"):
            text = open(p).read()
            assert text.startswith("#!/bin/bash\n# hpcmsm"), f          # documented
            assert "#SBATCH --output=" in text and "#SBATCH --time=" in text, f
            assert "source \"${HPCMSM_HOME:-${SLURM_SUBMIT_DIR:-.}}/jobscripts/lib.sh\"" in text, f
    for f in ("run", "fe2", "phasefield", "homogenize", "qc", "sweep"):
        assert "--signal=B:USR1@" in open(os.path.join(JOBS, f + ".sbatch")).read()
    assert "%x_%A_%a.out" in open(os.path.join(JOBS, "sweep.sbatch")).read()


def test_single_run_two_ranks(slurm):
    """run.sbatch → srun -n <SLURM_NTASKS> python -m hpcmsm info; parallel HDF5 works in the job."""
    r = slurm.run(["sbatch", "--ntasks=2", os.path.join(JOBS, "run.sbatch")], {"COMMAND": "info"})
    assert r.returncode == 0 and r.stdout.strip() == "Submitted batch job 1001", r.stderr
    assert slurm.rc(1001) == 0
    srun = slurm.log("srun")
    assert len(srun) == 1 and srun[0]["ntasks"] == 2 and srun[0]["argv"][:2] == ["-n", "2"]
    assert srun[0]["cmd"][-3:] == ["-m", "hpcmsm", "info"]
    out = (slurm.dir / "hpcmsm_1001.out").read_text()        # --output=%x_%j.out
    assert "hdf5 selftest : PASSED (1000 values from 2 rank(s), driver mpio)" in out


@pytest.mark.parametrize("cmd", ["fe2", "phasefield", "homogenize", "qc"])
def test_command_scripts_launch_line(slurm, cmd):
    """Each command script launches `hpcmsm <cmd> <abs INPUT> ARGS` on the allocation's tasks via
    submit.sh (NODES/NTASKS → sbatch options).  Missing INPUT is refused before any launch."""
    r = slurm.run([os.path.join(JOBS, "submit.sh"), cmd])
    assert r.returncode == 0
    assert slurm.rc(1001) != 0 and slurm.log("srun") == []
    assert "set INPUT" in (slurm.dir / f"hpcmsm-{cmd}_1001.out").read_text()
    real = cmd in REAL_INPUTS and _have_command(cmd)
    # without a tiny real case, an input every command rejects at once (an empty file could be a
    # valid input that runs a default problem for minutes)
    (slurm.dir / "in.toml").write_text(REAL_INPUTS[cmd] if real else "[no_such_table]\nx = 1\n")
    args = REAL_ARGS.get(cmd, "-x_ksp_type cg")
    env = {"INPUT": "in.toml", "NODES": "2", "NTASKS": "3", "ARGS": args, "TIME": "00:05:00", **REAL_ENV.get(cmd, {})}
    if env.get("GROUP_SIZE"):
        args += " --group-size " + env["GROUP_SIZE"]
    r = slurm.run([os.path.join(JOBS, "submit.sh"), cmd], env)
    assert r.returncode == 0 and r.stdout.strip() == "1002", r.stderr
    sb = slurm.log("sbatch")[-1]
    assert "--nodes=2" in sb["argv"] and "--ntasks=3" in sb["argv"] and sb["opts"]["signal"] == "B:USR1@120"
    srun = slurm.log("srun")[-1]
    assert srun["ntasks"] == 3
    assert srun["cmd"][-3 - len(args.split()):] == ["hpcmsm", cmd, str(slurm.dir / "in.toml"), *args.split()]
    if real:  # the command exists on main: the tiny case must run and give a checkable answer
        assert slurm.rc(1002) == 0, (slurm.dir / f"hpcmsm-{cmd}_1002.out").read_text()
        REAL_CHECKS[cmd](slurm.dir)


def test_sweep_array_and_gather(slurm):
    """A 4-row sweep of the scale advisor as a job array + dependent gather: one srun per task,
    %A_%a output files, one HDF5 whose results equal ℓ/L and ℓ²/(D T) for each row, a PNG."""
    (slurm.dir / "sweep.csv").write_text("name,micro_length,macro_length\n"
                                         "a,1e-6,1e-3\nb,2e-6,1e-3\nc,5e-5,1e-3\nd,2e-4,1e-3\n")
    (slurm.dir / "tpl.toml").write_text('[scales]\nname = "${name}"\nmicro_length = ${micro_length}\n'
                                        'macro_length = ${macro_length}\ndiffusivity = 1e-6\nmacro_time = 60.0\n')
    r = slurm.run([os.path.join(JOBS, "submit.sh"), "sweep"],
                  {"COMMAND": "scales", "SWEEP": "sweep.csv", "TEMPLATE": "tpl.toml", "SWEEP_DIR": "out",
                   "ARGS": "--json result.json", "MAX_PARALLEL": "2", "GATHER_X": "micro_length",
                   "GATHER_Y": "length_ratio"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1001", "1002"]
    sb = slurm.log("sbatch")
    assert "--array=0-3%2" in sb[0]["argv"] and sb[0]["opts"]["output"] == "%x_%A_%a.out"
    assert "--dependency=afterany:1001" in sb[1]["argv"] and sb[1]["argv"][-1].endswith("gather.sbatch")
    for i in range(4):
        assert slurm.rc(f"1001_{i}") == 0
        assert (slurm.dir / f"hpcmsm-sweep_1001_{i}.out").exists()
        assert (slurm.dir / "out" / f"task_{i:05d}" / "exit_code").read_text().strip() == "0"
    assert slurm.rc(1002) == 0, (slurm.dir / "hpcmsm-gather_1002.out").read_text()
    srun = slurm.log("srun")
    assert len(srun) == 4 and all(s["ntasks"] == 1 and s["cmd"][-4:] == ["scales", "input.toml", "--json", "result.json"]
                                  for s in srun)
    assert sorted(s["cwd"] for s in srun) == [str(slurm.dir / "out" / f"task_{i:05d}") for i in range(4)]
    import h5py

    with h5py.File(slurm.dir / "out" / "gathered.h5") as f:
        ell = f["params/micro_length"][...]
        L = f["params/macro_length"][...]
        assert [x.decode() if isinstance(x, bytes) else x for x in f["params/name"][...]] == list("abcd")
        np.testing.assert_allclose(f["results/result/0.length_ratio"][...], ell / L, rtol=1e-15)
        np.testing.assert_allclose(f["results/result/0.time_ratio"][...], ell**2 / 1e-6 / 60.0, rtol=1e-14)
        assert list(f["status"][...]) == [0, 0, 0, 0]
        assert f.attrs["creator"] == "hpcmsm"
    assert (slurm.dir / "out" / "summary.png").stat().st_size > 5000


def test_gather_marks_failed_task(tmp_path):
    """A task that failed (exit_code 1, no results) is NaN with its status; others survive."""
    from hpcmsm.bench.sweep import gather, render_row

    (tmp_path / "t.toml").write_text("[grid]\nsize = [4, 8]\nseed = [0, 1]\n[fixed]\nE = 2.0\n")
    root = tmp_path / "out"
    for i in range(4):
        row = render_row(str(tmp_path / "t.toml"), i, None, str(root / f"task_{i:05d}"))
        assert row["E"] == 2.0
        ok = i != 2
        (root / f"task_{i:05d}" / "exit_code").write_text("0" if ok else "1")
        if ok:
            (root / f"task_{i:05d}" / "r.json").write_text(json.dumps({"C11": row["size"] * 10 + row["seed"]}))
    s = gather(str(tmp_path / "t.toml"), str(root), str(tmp_path / "g.h5"), str(tmp_path / "g.png"), x="size", y="C11")
    assert s == {"tasks": 4, "ok": 3, "failed": 1, "results": 1, "h5": str(tmp_path / "g.h5"), "png": str(tmp_path / "g.png")}
    import h5py

    with h5py.File(tmp_path / "g.h5") as f:
        c = f["results/r/C11"][...]
        assert list(f["params/size"][...]) == [4, 4, 8, 8] and list(f["params/seed"][...]) == [0, 1, 0, 1]
        assert c[0] == 40 and c[1] == 41 and np.isnan(c[2]) and c[3] == 81
        assert list(f["status"][...]) == [0, 0, 1, 0]


def _have_command(name):
    import importlib.util

    return importlib.util.find_spec(f"hpcmsm.commands.{name}") is not None


def _check_homogenize(d):
    """2D checkerboard k = 1 | 10 (periodic cell): symmetric, inside the Wiener bounds, above
    the exact √10 (the voxel result approaches it from above) and close to it."""
    doc = json.loads((d / "res" / "summary.json").read_text())
    k = np.array(doc["effective"]["periodic"])
    assert abs(k[0, 1]) < 1e-8 * k[0, 0] and abs(k[0, 0] - k[1, 1]) < 1e-8 * k[0, 0]
    assert 2 / (1 + 0.1) < np.sqrt(10) < k[0, 0] < 5.5
    assert k[0, 0] < 1.15 * np.sqrt(10)


def _check_fe2(d):
    """One elastic FE² step on 3 ranks in one group of 3 (GROUP_SIZE=3): the audit passes and,
    linear elastic, the stored energy equals ½·reaction·displacement (Clapeyron) with no
    dissipation."""
    doc = json.loads((d / "res" / "fe2_summary.json").read_text())
    assert doc["ranks"] == 3 and doc["groups"] == 1 and doc["group_size"] == 3
    assert doc["audit"]["passed"]
    h = dict(zip(doc["history_columns"], doc["history"][-1]))
    assert h["plastic_qps"] == 0 and h["dissipation"] == 0
    clapeyron = 0.5 * h["reaction"] * h["displacement"]
    assert h["reaction"] > 0 and abs(h["stored_energy"] - clapeyron) < 1e-8 * clapeyron


FE2_TINY = """[macro]
geometry = "plate_with_hole"
size = 10.0
hole_radius = 3.0
cells = [4, 2]
displacement = 0.002
steps = 1
[micro]
model = "voxel"
voxels = 6
microstructure = "particle"
volume_fraction = 0.2
bc = "periodic"
matrix = { E = 70e3, nu = 0.33, sigma_y = 100.0, H = 500.0 }
particle = { E = 400e3, nu = 0.2 }
[pool]
group_size = 1
[output]
dir = "res"
"""

def _check_phasefield(d):
    """Two implicit Cahn–Hilliard steps of PFHub 1 on 32² cells over 3 ranks: mass conserved to
    round-off and the free energy decreased (the audit), the requested steps taken."""
    doc = json.loads((d / "res" / "phasefield_summary.json").read_text())
    assert doc["status"] == "done" and doc["ranks"] == 3 and doc["steps"] == 2 and doc["audit"]["passed"]
    checks = {c["name"]: c for c in doc["audit"]["checks"]}
    assert abs(checks["mass drift (relative)"]["value"]) < 1e-12


PF_TINY = """[problem]
model = "cahn_hilliard"
shape = [32, 32]
lengths = [200.0, 200.0]
boundary = "periodic"
[energy]
kind = "double_well"
rho = 5.0
c_alpha = 0.3
c_beta = 0.7
[initial]
kind = "pfhub1_periodic"
[time]
t_end = 2.0
dt0 = 1.0
adaptive = false
output_times = [2.0]
[output]
dir = "res"
checkpoint_every = 0
png = false
"""

REAL_INPUTS = {"fe2": FE2_TINY, "phasefield": PF_TINY, "homogenize": '[problem]\nkind = "conductivity"\nbc = ["periodic"]\n[microstructure]\n'
                             'type = "checkerboard"\nshape = [32, 32]\ncells = 2\n[[phases]]\nname = "a"\nk = 1.0\n'
                             '[[phases]]\nname = "b"\nk = 10.0\n[output]\ndir = "res"\n'}
REAL_ARGS = {"homogenize": "--out res --quiet", "fe2": "--out res --quiet", "phasefield": "--out res --quiet"}
REAL_ENV = {"fe2": {"GROUP_SIZE": "3"}}
REAL_CHECKS = {"homogenize": _check_homogenize, "fe2": _check_fe2, "phasefield": _check_phasefield}


def _wait_for(pred, timeout=120, what=""):
    t_end = time.time() + timeout
    while time.time() < t_end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_walltime_signal_checkpoint_and_resubmit(slurm):
    """SLURM's warning (SIGUSR1 to the batch shell, --signal=B:USR1@120) is forwarded through
    srun to the ranks; the run checkpoints and exits 75; the script resubmits itself with
    RESTART=1 after the first job (afterany), and the continuation finishes the verified run."""
    work = slurm.dir / "work"
    extra = {"COMMAND": "bench stencil", "ARGS": "--nx 100 --steps 3000 --checkpoint ck.h5 --json out.json",
             "RESUBMIT": "1", "WORKDIR": str(work), "FAKE_SBATCH_ASYNC": "1"}
    r = slurm.run(["sbatch", "--ntasks=2", "--parsable", os.path.join(JOBS, "run.sbatch")], extra)
    assert r.returncode == 0 and r.stdout.strip() == "1001"
    out1 = slurm.dir / "hpcmsm_1001.out"
    _wait_for(lambda: out1.exists() and "stencil: running steps 1..3000" in out1.read_text(), what="the run to start")
    os.kill(slurm.pid(1001), signal.SIGUSR1)               # what SLURM does 120 s before the limit
    _wait_for(lambda: slurm.rc(1001) is not None, timeout=240, what="the job chain to end")
    text1 = out1.read_text()
    assert slurm.rc(1001) == 0 and slurm.rc(1002) == 0, text1
    assert "SIGUSR1: asking the run to checkpoint and stop" in text1
    assert "bench stencil stopped cleanly after step" in text1 and "resubmitting" in text1
    sb = slurm.log("sbatch")
    assert len(sb) == 2
    assert "--export=ALL,RESTART=1,RESUBMIT=0" in sb[1]["argv"] and "--dependency=afterany:1001" in sb[1]["argv"]
    assert "--ntasks=2" in sb[1]["argv"] and sb[1]["argv"][-1].endswith("jobscripts/run.sbatch")
    srun = slurm.log("srun")
    assert [s["cmd"][-1] for s in srun] == ["out.json", "--restart"]
    res = json.loads((work / "out.json").read_text())
    assert res["steps"] == 3000 and 0 < res["steps_run"] < 3000     # the continuation resumed
    assert res["max_error_vs_mode"] < 1e-12                         # and matches the eigenmode oracle


def test_scaling_script(slurm):
    """scaling.sbatch: STREAM + MPI probes on the allocation, then the harness launches the
    stencil with srun -n 1 and -n 2 (strong and weak) and writes its table and plots."""
    r = slurm.run(["sbatch", "--ntasks=2", os.path.join(JOBS, "scaling.sbatch")],
                  {"RANKS": "1 2", "MODE": "weak", "WEAK": "nx=round(48*n**0.5)", "OUT": "sc",
                   "BENCH_CMD": "bench stencil --nx {nx} --steps 20 --json {json}", "STREAM_N": "65536"})
    assert r.returncode == 0
    assert slurm.rc(1001) == 0, (slurm.dir / "hpcmsm-scaling_1001.out").read_text()
    srun = slurm.log("srun")
    assert [s["ntasks"] for s in srun] == [2, 2, 1, 2]
    assert srun[0]["cmd"][-6:-4] == ["bench", "stream"] and srun[1]["cmd"][-4:-2] == ["bench", "mpi"]
    assert all("-log_view" in s["cmd"] for s in srun[2:])
    assert json.loads((slurm.dir / "sc" / "stream.json").read_text())["check"] is True
    assert json.loads((slurm.dir / "sc" / "mpi.json").read_text())["latency_s"] > 0
    doc = json.loads((slurm.dir / "sc" / "scaling.json").read_text())
    assert [r["params"]["nx"] for r in doc["results"]["weak"]] == [48, 68]
    assert "strong" not in doc["results"]
    for f in ("scaling.md", "weak.png"):
        assert (slurm.dir / "sc" / f).exists()


@pytest.mark.slow
@pytest.mark.skipif(not _have_command("homogenize"), reason="homogenize command not on this branch")
def test_sve_ensemble_homogenize(slurm):
    """An SVE ensemble as a job array: 2 sizes x 2 seeds of random inclusions (conductivity),
    gathered into one HDF5; every realisation obeys Wiener bounds and the volume fraction."""
    (slurm.dir / "sve.toml").write_text("[grid]\nsize = [16, 24]\nseed = [1, 2]\n")
    (slurm.dir / "sve.toml.in").write_text(
        '[problem]\nkind = "conductivity"\nbc = ["periodic"]\n[microstructure]\ntype = "random_inclusions"\n'
        'shape = [${size}, ${size}]\nvolume_fraction = 0.3\nradius = 3.0\nmin_gap = 1.0\nseed = ${seed}\n'
        '[[phases]]\nname = "m"\nk = 1.0\n[[phases]]\nname = "i"\nk = 10.0\n[output]\ndir = "res"\n')
    r = slurm.run([os.path.join(JOBS, "submit.sh"), "sweep"],
                  {"COMMAND": "homogenize", "SWEEP": "sve.toml", "TEMPLATE": "sve.toml.in", "SWEEP_DIR": "ens",
                   "ARGS": "--quiet", "GATHER_X": "size", "GATHER_Y": "effective.periodic.0.0"})
    assert r.returncode == 0, r.stderr
    assert slurm.rc(1002) == 0, (slurm.dir / "hpcmsm-gather_1002.out").read_text()
    import h5py

    with h5py.File(slurm.dir / "ens" / "gathered.h5") as f:
        assert list(f["status"][...]) == [0, 0, 0, 0]
        k = f["results/res/summary/effective.periodic.0.0"][...]
        phi = f["results/res/summary/volume_fractions.1"][...]
    assert np.all(np.abs(phi - 0.3) < 0.1)
    harmonic = 1 / ((1 - phi) / 1.0 + phi / 10.0)
    arithmetic = (1 - phi) * 1.0 + phi * 10.0
    assert np.all((harmonic < k) & (k < arithmetic))
    assert (slurm.dir / "ens" / "summary.png").exists()


QC_TINY = """[lattice]
type = "triangular"
a = 1.12
[potential]
type = "lj"
rc = 2.5
cutoff = "smooth"
r_on = 2.2
[qc]
nx = 24
ny = 24
ring = 3.0
vacancies = [[0, 0]]
atomistic_radius = 3.0
F = [[1.0, 0.01], [0.0, 1.0]]
scheme = "gfc"
coarsest = 4
adapt = false
compare_full = true
[output]
dir = "res"
"""


@pytest.mark.slow
@pytest.mark.skipif(not _have_command("qc"), reason="qc command not on this branch")
def test_qc_script_real_case(slurm):
    """qc.sbatch on 3 ranks: a vacancy under 1 % shear; the ghost-force-corrected QC's
    configuration is admissible (its true energy is not below the full atomistic minimum) and
    its energy error is a small fraction of the deformation energy."""
    (slurm.dir / "in.toml").write_text(QC_TINY)
    r = slurm.run([os.path.join(JOBS, "submit.sh"), "qc"], {"INPUT": "in.toml", "NTASKS": "3", "ARGS": "-o res"})
    assert r.returncode == 0
    assert slurm.rc(1001) == 0, (slurm.dir / "hpcmsm-qc_1001.out").read_text()
    assert slurm.log("srun")[0]["cmd"][-4:] == ["qc", str(slurm.dir / "in.toml"), "-o", "res"]
    doc = json.loads((slurm.dir / "res" / "summary.json").read_text())
    assert doc["audit"]["passed"]
    assert doc["true_energy_of_qc_configuration"] >= doc["energy_exact"] - 1e-8 * abs(doc["energy_exact"])
    assert doc["energy_error_rel_deformation"] < 1e-2 and doc["dofs_qc"] < doc["dofs_full"]
