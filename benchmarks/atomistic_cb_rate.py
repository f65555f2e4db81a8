"""Cauchy–Born evaluation rate: W, P and A for 1e5 deformation gradients (FCC Lennard-Jones).

    ./run python benchmarks/atomistic_cb_rate.py [--n 100000]

Prints one JSON object with the rates (deformation gradients per second) for W only, W+P and
W+P+A, the bond count, and the same for the SW diamond model with inner relaxation (smaller n).
Serial: the kernel is pure numpy, vectorised over F and bonds.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rate(cb, F, order, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        cb.evaluate(F, order=order)
        best = min(best, time.perf_counter() - t)
    return len(F) / best, best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100000)
    ns = ap.parse_args()
    from hpcmsm.atomistic import (CauchyBorn, LennardJones, StillingerWeber, equilibrium_lattice,
                                  make_lattice)

    rng = np.random.default_rng(0)
    lj = LennardJones(rc=2.5, cutoff="smooth", r_on=2.2)
    cb = CauchyBorn(equilibrium_lattice(make_lattice("fcc", 1.55), lj), lj)
    F = np.eye(3) + 0.02 * rng.standard_normal((ns.n, 3, 3))
    out = {"benchmark": "atomistic_cb_rate", "n": ns.n, "lattice": "fcc", "potential": "LJ rc=2.5 smooth"}
    cb.evaluate(F[:100])
    out["bonds_per_F"] = int((np.linalg.norm(cb.bonds.d, axis=1) < cb.potential.rc / 0.9).sum())
    for order, name in ((0, "W"), (1, "W+P"), (2, "W+P+A")):
        r, t = rate(cb, F, order)
        out[f"rate_{name}_per_s"] = r
        out[f"time_{name}_s"] = t
    sw = StillingerWeber()
    cbs = CauchyBorn(equilibrium_lattice(make_lattice("diamond", 5.43), sw), sw)
    m = max(1000, ns.n // 50)
    Fs = np.eye(3) + 0.01 * rng.standard_normal((m, 3, 3))
    r, t = rate(cbs, Fs, 2, repeat=1)
    out["sw_diamond_relaxed_n"] = m
    out["sw_diamond_relaxed_rate_W+P+A_per_s"] = r
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
