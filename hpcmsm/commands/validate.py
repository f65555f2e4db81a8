"""``hpcmsm validate INPUT.toml``: calibration on calibration data, validation with UQ on validation data."""
from __future__ import annotations

NAME = "validate"
HELP = "calibrate on calibration data, propagate input uncertainty (LHS), compare with validation data (V&V 20, area metric)"
ORDER = 81


def add_arguments(p) -> None:
    p.add_argument("input", help="TOML with a [validation] table (see examples/validation_composite.toml)")
    p.add_argument("--out", metavar="DIR", help="output directory (overrides [output] dir)")


def run(args, comm) -> int:
    import json
    import os

    from ..config import load
    from ..parallel import Log
    from ..timing import Timers
    from ..vv import report as rp

    log = Log(comm)
    cfg, text = load(args.input, rp.ValidationInput)
    base = os.path.dirname(os.path.abspath(args.input))
    outdir = args.out or os.path.join(base, cfg.output.dir)
    timers = Timers(comm)
    with timers("validation"):
        out = rp.run_validation(comm, cfg.validation, base)
    phases = timers.summary()  # collective: before the rank-0 block
    if comm.rank == 0:
        os.makedirs(outdir, exist_ok=True)
        with open(os.path.join(outdir, "validation.md"), "w") as fh:
            fh.write("# Validation report\n\n" + out.markdown)
        summary = dict(out.summary, timers=phases)
        with open(os.path.join(outdir, "validation.json"), "w") as fh:
            json.dump(summary, fh, indent=1, default=float)
        if cfg.output.png:
            rp.plot_validation(out, os.path.join(outdir, "validation.png"))
    log(out.markdown)
    log(f"report: {os.path.join(outdir, 'validation.md')}")
    return 0
