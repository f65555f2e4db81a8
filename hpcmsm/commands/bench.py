"""``hpcmsm bench``: HPC probes and the scaling harness.

``bench stencil``  the DMDA heat-stencil kernel (halo exchange + 5-point update), verified
                   against its discrete eigenmode; checkpoints and stops cleanly on SIGUSR1/TERM
``bench stream``   STREAM-like memory bandwidth (all ranks at once)
``bench mpi``      ping-pong latency/bandwidth (Hockney fit) and Allreduce latency
``bench scaling``  strong/weak scaling of any command at several rank counts (run it serially:
                   ``./run bench scaling ...``; it launches each case itself)
"""
from __future__ import annotations

import json

NAME = "bench"
HELP = "HPC probes (stencil kernel, STREAM bandwidth, MPI latency) and the strong/weak scaling harness"
ORDER = 90


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="bench", metavar="WHAT", required=True)
    s = sub.add_parser("stencil", help="DMDA 2D heat stencil (halo + 5-point update), verified")
    s.add_argument("--nx", type=int, default=512, help="interior points in x")
    s.add_argument("--ny", type=int, default=None, help="interior points in y (default nx)")
    s.add_argument("--steps", type=int, default=100)
    s.add_argument("--norm-every", type=int, default=10, help="global norm (allreduce) every k steps")
    s.add_argument("--checkpoint", default=None, help="checkpoint file (enables --restart and stop-on-signal saves)")
    s.add_argument("--ckpt-every", type=int, default=0, help="also checkpoint every k steps")
    s.add_argument("--restart", action="store_true", help="continue from --checkpoint")
    s.add_argument("--json", default=None, help="write the summary (timers, error, bandwidth) here")
    m = sub.add_parser("stream", help="STREAM-like memory bandwidth, all ranks at once")
    m.add_argument("--n", type=int, default=1 << 23, help="doubles per array per rank")
    m.add_argument("--ntimes", type=int, default=10)
    m.add_argument("--json", default=None)
    q = sub.add_parser("mpi", help="MPI ping-pong latency/bandwidth and Allreduce latency")
    q.add_argument("--json", default=None)
    try:  # keep --help of every command working even if the harness module is broken
        from ..bench.scaling import add_arguments as scaling_args
    except Exception:  # pragma: no cover
        scaling_args = None
    if scaling_args is not None:
        scaling_args(sub.add_parser("scaling", help="strong/weak scaling of a command: table + PNGs"))


def _dump(comm, path, data) -> None:
    if path and comm.rank == 0:
        with open(path, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)


def run(args, comm) -> int:
    from ..errors import InputError
    from ..parallel import rprint

    if args.bench == "stencil":
        from .. import signals
        from ..bench.stencil import run_stencil

        ny = args.ny or args.nx
        if args.nx < 2 or ny < 2 or args.steps < 1:
            raise InputError("bench stencil: need --nx, --ny >= 2 and --steps >= 1")
        r = run_stencil(comm, args.nx, ny, args.steps, norm_every=args.norm_every,
                        checkpoint=args.checkpoint, ckpt_every=args.ckpt_every, restart=args.restart,
                        announce=True)
        _dump(comm, args.json, r)
        t = r["timers"]
        rprint(comm, f"stencil {args.nx}x{ny} on {comm.size} rank(s), {r['steps_run']} steps: "
                     f"compute {t['compute']['max']:.3f} s, halo {t['halo']['max']:.3f} s, "
                     f"{r['compute_bandwidth_GBs'] or 0:.2f} GB/s, max error vs eigenmode {r['max_error_vs_mode']:.1e}")
        if r["max_error_vs_mode"] > 1e-10:
            rprint(comm, "hpcmsm: error: stencil result differs from the discrete eigenmode")
            return 1
        if r["stopped"]:
            return signals.stopped(comm, r["stopped"], args.checkpoint, what="bench stencil")
        return 0
    if args.bench == "stream":
        from ..bench.stream import stream

        r = stream(comm, args.n, args.ntimes)
        _dump(comm, args.json, r)
        rprint(comm, f"STREAM-like, {comm.size} rank(s) x {r['array_MiB_per_rank']:.0f} MiB arrays: " +
               ", ".join(f"{k} {v:.2f} GB/s" for k, v in r["GBs"].items()))
        return 0 if r["check"] else 1
    if args.bench == "mpi":
        from ..bench.mpiprobe import probe

        r = probe(comm)
        _dump(comm, args.json, r)
        line = f"MPI on {comm.size} rank(s): allreduce(1 double) {r['allreduce_s']['1'] * 1e6:.2f} us"
        if "latency_s" in r:
            line += f", ping-pong latency {r['latency_s'] * 1e6:.2f} us, bandwidth {r['bandwidth_Bs'] / 1e9:.2f} GB/s"
        rprint(comm, line)
        return 0
    if args.bench == "scaling":
        from ..bench.scaling import main_from_args

        if comm.size != 1:
            raise InputError("bench scaling launches its own MPI jobs: run it on one rank "
                             "(./run bench scaling ..., or ./run python -m hpcmsm.bench.scaling ...)")
        return main_from_args(args)
    raise InputError(f"unknown bench {args.bench}")
