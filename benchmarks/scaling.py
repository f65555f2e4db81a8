"""Strong/weak scaling of hpcmsm commands with the harness (hpcmsm.bench.scaling): presets.

    ./run python benchmarks/scaling.py PRESET [--ranks 1 2 4] [--out DIR] [--figures DIR] [harness options]

PRESET: stencil (the DMDA heat kernel), phasefield (Cahn–Hilliard, PFHub-1-like spinodal
decomposition on a grid of nx² cells), fe2 (macro bar with RVEs at every quadrature point),
homogenize (one 3D RVE).  Prints the table; writes scaling.json/.md and strong/weak PNGs to
--out; --figures copies the PNGs as <preset>_strong.png / <preset>_weak.png.  Extra arguments
are handed to the harness (e.g. --repeat 3, --metric solve).
"""
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from hpcmsm.bench import scaling  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PRESETS = {
    "stencil": ["--cmd", "bench stencil --nx {nx} --steps 200 --json {json}",
                "--strong", "nx=1024", "--weak", "nx=round(512*n**0.5)"],
}


def main(argv):
    if not argv or argv[0] not in PRESETS:
        print(__doc__)
        print("presets available now:", ", ".join(PRESETS))
        return 2
    preset, rest = argv[0], argv[1:]
    figures = None
    if "--figures" in rest:
        i = rest.index("--figures")
        figures = rest[i + 1]
        del rest[i:i + 2]
    if "--out" not in rest:
        rest += ["--out", os.path.join(tempfile.gettempdir(), f"hpcmsm-scaling-{preset}")]
    if "--ranks" not in rest:
        rest += ["--ranks", "1", "2", "4"]
    args = PRESETS[preset] + ["--title", f"{preset} (hpcmsm.bench.scaling)"] + rest
    rc = scaling.main(args)
    out = rest[rest.index("--out") + 1]
    if figures:
        os.makedirs(figures, exist_ok=True)
        for mode in ("strong", "weak"):
            p = os.path.join(out, f"{mode}.png")
            if os.path.exists(p):
                shutil.copy(p, os.path.join(figures, f"{preset}_{mode}.png"))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
