"""Graceful stop on SLURM's warning signal (hpcmsm.signals): flag, collective agreement,
checkpoint, documented exit status, restart to the same answer as an uninterrupted run."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hpcmsm import signals

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(HERE, "drivers", "stop_loop.py")


@pytest.fixture
def trapped():
    names = signals.install(("USR1", "TERM"))
    yield names
    signals.uninstall()


def heat_oracle(steps, n=64, r=0.4):
    """Serial reference of the driver's explicit heat equation (independent of decomposition)."""
    x = np.linspace(0, 1, n)
    u = np.sin(np.pi * x) + 0.3 * np.sin(5 * np.pi * x)
    for _ in range(steps):
        un = u.copy()
        un[1:-1] = u[1:-1] + r * (u[2:] - 2 * u[1:-1] + u[:-2])
        un[0] = un[-1] = 0.0
        u = un
    return u


@pytest.mark.mpi
def test_signal_on_one_rank_stops_all(comm, trapped):
    assert trapped == ["SIGUSR1", "SIGTERM"]
    assert signals.should_stop(comm) is False
    if comm.rank == 0:
        os.kill(os.getpid(), signal.SIGUSR1)
        # the handler has run by the next bytecode: the local flag is up on rank 0 only
        assert signals.requested()
    else:
        assert not signals.requested()
    assert signals.should_stop(comm) is True          # every rank agrees
    assert signals.requested()                        # and remembers
    assert signals.reason() == ("SIGUSR1" if comm.rank == 0 else "stop request on another rank")
    assert signals.stopped(comm, 7, "x.h5") == signals.EXIT_STOPPED == 75


@pytest.mark.mpi
def test_deadline_stops_all(comm, trapped):
    signals.set_deadline(time.time() + 3600)
    assert signals.should_stop(comm) is False
    signals.set_deadline(time.time() - 1)             # only rank 0's clock counts
    assert signals.should_stop(comm) is True
    assert signals.reason() in ("deadline", "stop request on another rank")


def test_uninstall_restores_previous_handler():
    before = signal.getsignal(signal.SIGUSR1)
    signals.install(("SIGUSR1",))
    assert signal.getsignal(signal.SIGUSR1) is signals._handler
    signals.uninstall()
    assert signal.getsignal(signal.SIGUSR1) == before and not signals.requested()


def test_second_signal_takes_default_action():
    code = ("import os, signal, time; from hpcmsm import signals; signals.install();"
            "os.kill(os.getpid(), signal.SIGTERM); assert signals.requested();"
            "os.kill(os.getpid(), signal.SIGTERM); time.sleep(5); print('survived')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == -signal.SIGTERM and "survived" not in r.stdout, r.stderr


def _launch(n, outdir, *extra):
    from conftest import clean_mpi_env  # tests/ is on sys.path via rootdir conftest

    cmd = ["mpirun", "-n", str(n), sys.executable, DRIVER, outdir, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_mpi_env())


def _wait_progress(outdir, proc, at_least, timeout=60):
    t_end = time.time() + timeout
    path = os.path.join(outdir, "progress")
    while time.time() < t_end:
        assert proc.poll() is None, proc.communicate()
        try:
            if int(open(path).read() or 0) >= at_least:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError("driver made no progress")


def _final(outdir):
    import h5py

    with h5py.File(os.path.join(outdir, "final.h5")) as f:
        return f["u"][...], int(f.attrs["step"])


@pytest.mark.parametrize("how, n_restart", [("usr1-to-mpirun", 3), ("term-to-one-rank", 1)])
def test_signal_checkpoints_exits_and_restarts(tmp_path, how, n_restart):
    """SIGUSR1 to mpirun (forwarded to every rank, like srun does) or SIGTERM to a single rank
    (only one rank hears it): the job checkpoints at an agreed step, exits 75, and a restart on a
    different rank count reaches the same final field as the serial oracle."""
    out = str(tmp_path)
    steps = 40
    p = _launch(2, out, "--steps", str(steps), "--sleep", "0.1")
    _wait_progress(out, p, 3)
    if how == "usr1-to-mpirun":
        p.send_signal(signal.SIGUSR1)
    else:
        os.kill(int(open(os.path.join(out, "pid.1")).read()), signal.SIGTERM)
    so, se = p.communicate(timeout=60)
    assert p.returncode == signals.EXIT_STOPPED, se
    assert "stopped cleanly after step" in se and "--restart" in se
    import h5py

    with h5py.File(os.path.join(out, "ckpt.h5")) as f:
        k = int(f.attrs["step"])
        u_k = f["arrays/u"][...]
    assert 3 <= k < steps
    assert f"after step {k} " in se
    np.testing.assert_allclose(u_k, heat_oracle(k), rtol=0, atol=1e-14)
    assert not os.path.exists(os.path.join(out, "final.h5"))
    r = _launch(n_restart, out, "--steps", str(steps), "--restart")
    so, se = r.communicate(timeout=120)
    assert r.returncode == 0, se
    u, last = _final(out)
    assert last == steps
    np.testing.assert_allclose(u, heat_oracle(steps), rtol=0, atol=1e-14)
