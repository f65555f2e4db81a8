"""Strong/weak scaling of hpcmsm commands with the harness (hpcmsm.bench.scaling): presets.

    ./run python benchmarks/scaling.py PRESET [--ranks 1 2 4] [--out DIR] [--figures DIR] [harness options]

PRESET: stencil (the DMDA heat kernel); phasefield-lib (Cahn–Hilliard PFHub-1 spinodal
decomposition, fixed-Δt implicit steps of hpcmsm's PhaseFieldSolver via benchmarks/scaling_ch.py,
nx² cells); phasefield (the same through the `phasefield` command, once it exists); fe2 (plate
with a hole, 2 load steps, a plastic voxel RVE at every quadrature point; speedup measured on
the Newton phase); homogenize (one 3D periodic elasticity RVE, n_vox³ voxels).  Prints the table; writes scaling.json/.md and strong/weak PNGs to
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
FE2_TEMPLATE = """[macro]
geometry = "plate_with_hole"
size = 10.0
hole_radius = 3.0
cells = [${ca}, 4]
displacement = 0.01
steps = 2
[micro]
model = "voxel"
voxels = 8
microstructure = "particle"
volume_fraction = 0.2
bc = "periodic"
matrix = { E = 70e3, nu = 0.33, sigma_y = 100.0, H = 500.0 }
particle = { E = 400e3, nu = 0.2 }
[pool]
group_size = 1
balance = "cost"
[output]
dir = "${outdir}/res"
"""

PHASEFIELD_TEMPLATE = """[problem]
model = "cahn_hilliard"
shape = [${nx}, ${nx}]
lengths = [200.0, 200.0]
boundary = "periodic"
kappa = 2.0
mobility = 5.0
[energy]
kind = "double_well"
rho = 5.0
c_alpha = 0.3
c_beta = 0.7
[initial]
kind = "pfhub1_periodic"
[time]
t_end = 4.0
scheme = "implicit"
dt0 = 1.0
adaptive = false
output_times = [4.0]
[output]
dir = "${outdir}/res"
checkpoint_every = 0
png = false
"""

HOMOGENIZE_TEMPLATE = """[problem]
kind = "elasticity"
bc = ["periodic"]
[microstructure]
type = "random_inclusions"
shape = [${n_vox}, ${n_vox}, ${n_vox}]
volume_fraction = 0.2
radius = 4.0
seed = 1
[[phases]]
name = "matrix"
E = 3.5e9
nu = 0.35
[[phases]]
name = "inclusion"
E = 70e9
nu = 0.22
[output]
dir = "${outdir}/res"
"""

PRESETS = {
    "stencil": (["--cmd", "bench stencil --nx {nx} --steps 200 --json {json}",
                 "--strong", "nx=1024", "--weak", "nx=round(512*n**0.5)"], None),
    "phasefield-lib": (["--cmd", "benchmarks/scaling_ch.py --nx {nx} --steps 4 --json {json}",
                        "--strong", "nx=256", "--weak", "nx=round(192*n**0.5)", "--metric", "step"], None),
    "phasefield": (["--cmd", "phasefield {input} --quiet", "--strong", "nx=256", "--weak", "nx=round(192*n**0.5)",
                    "--metric", "time loop"], PHASEFIELD_TEMPLATE),
    "fe2": (["--cmd", "fe2 {input} --quiet", "--strong", "ca=8", "--weak", "ca=4*n", "--metric", "newton"],
            FE2_TEMPLATE),
    "homogenize": (["--cmd", "homogenize {input} --quiet", "--strong", "n_vox=32",
                    "--weak", "n_vox=round(24*n**(1/3))"], HOMOGENIZE_TEMPLATE),
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
    words, template = PRESETS[preset]
    out = rest[rest.index("--out") + 1]
    if template and "--template" not in rest:
        os.makedirs(out, exist_ok=True)
        tpl = os.path.join(out, f"{preset}.toml.in")
        with open(tpl, "w") as fh:
            fh.write(template)
        rest += ["--template", tpl]
    args = words + ["--title", f"{preset} (hpcmsm.bench.scaling)"] + rest
    rc = scaling.main(args)
    if figures:
        os.makedirs(figures, exist_ok=True)
        for mode in ("strong", "weak"):
            p = os.path.join(out, f"{mode}.png")
            if os.path.exists(p):
                shutil.copy(p, os.path.join(figures, f"{preset}_{mode}.png"))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
