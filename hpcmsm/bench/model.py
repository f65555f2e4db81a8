"""Performance models for Cahn–Hilliard on a DMDA and for FE², calibrated here, extrapolated to
10³–10⁵ ranks.

Both are latency–bandwidth (Hockney) models: a message of m bytes costs ``α + m/β``; an
``Allreduce`` costs ``⌈log₂P⌉ (α_ar + m/β)`` (recursive doubling); an ``Allgather`` of B bytes in
total costs ``⌈log₂P⌉ α + B (P−1)/P / β``.  Up to ``cores_per_node`` ranks the intra-node numbers
measured here apply; beyond, assumed network numbers (``alpha_net``, ``beta_net``).  Local work
per grid point is calibrated at one rank and shared memory bandwidth is taken into account: with
r ranks on a node a memory-bound kernel cannot run faster than ``bytes_per_point · r / B_node``.

Cahn–Hilliard (one time step, split form, dof = 2 per cell, N cells, d dimensions)::

    T = n_newton [ t_res + t_jac + n_krylov ( t_matvec + t_pc + t_orth ) ]

* ``t_res``, ``t_matvec``: N/P · c + halo exchange of 2d faces of (N/P)^((d−1)/d) cells × dof × 8 B
* ``t_jac``: N/P · c_jac (no communication: the stencil's ghosts are already there)
* ``t_orth``: GMRES Gram–Schmidt ≈ vector work N/P · c_vec + 2 Allreduce per iteration
* ``t_pc``: ``"allgather-fft"`` (the current phase-field default: every rank gathers the whole
  field and does the full FFT — cost independent of P, so strong scaling saturates),
  ``"pencil-fft"`` (distributed FFT: N log N / P work + two all-to-all transposes),
  ``"mg"`` (geometric multigrid: ≈ a few matvecs of work and a halo exchange per level, plus a
  coarse solve with log P latency; iterations assumed P-independent).

FE² (one macro Newton iteration, M macro quadrature points = RVEs, P ranks in groups of g)::

    T = ⌈M g / P⌉ · t_rve(g) + t_exchange(P) + t_macro(P)

* ``t_rve(g) = t_rve1 / (g · e_g)`` with ``e_g`` the RVE solver's parallel efficiency on g ranks
  (1 at g = 1; calibrated or assumed 0.8 for g > 1);
* ``t_exchange``: the pool's routing = one all-to-all of counts (Bruck, log P latency) + two
  ``Alltoallv`` of strains (6 doubles) and stress/tangent/scalars (≈ 46 doubles) per RVE,
  latency ∝ the number of groups a rank talks to, plus a broadcast inside each group;
* ``t_macro``: macro residual/tangent assembly ∝ quadrature points/P and a Krylov solve with
  ``n_macro_krylov`` iterations of halo + 2 Allreduce each.

The load-imbalance term ``⌈M g / P⌉`` is the main FE² effect: once P/g exceeds M, extra ranks only
idle.  Assumptions are listed in :data:`ASSUMPTIONS` and printed with the model tables.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

ASSUMPTIONS = [
    "Hockney model t = α + m/β per message; no contention between simultaneous messages beyond "
    "the per-node bandwidth share; collectives by recursive doubling (log₂P stages).",
    "Up to cores_per_node ranks the intra-node α, β, allreduce stage measured here apply; beyond, "
    "α_net = 1.5 µs, β_net = 12 GB/s per node link (InfiniBand HDR-class), a per-stage allreduce "
    "latency of 2 µs — typical published values, not measured here.  Off-node halo messages share "
    "the link among ≈√(cores_per_node) boundary ranks; all-to-all/allgather traffic among all "
    "cores_per_node ranks of a node.",
    "Per-point compute cost calibrated on 1 rank; with r ranks per node a memory-bound kernel is "
    "limited by the node's STREAM bandwidth shared r ways (cores_per_node = 128 in the extrapolation).",
    "Newton and Krylov iteration counts per step are P-independent (true for the exact-inverse "
    "spectral preconditioner and for a working multigrid; false for one-level Jacobi/ILU).",
    "FE²: identical RVEs (same microstructure), static round-robin assignment, no RVE state migration; "
    "RVE parallel efficiency e_g on g ranks taken from measurement or 0.8 if not measured.",
    "No OS noise, no I/O in the modelled steps (checkpoints and field output are extra).",
]


@dataclass
class Machine:
    """Latency/bandwidth numbers (SI units: s, bytes/s)."""

    alpha: float = 2e-6              # p2p latency within a node (measured: ping-pong fit)
    beta: float = 5e9                # p2p bandwidth within a node
    allreduce_stage: float = 3e-6    # s per log2 stage of an 8-byte allreduce within a node
    stream_node: float = 20e9        # node memory bandwidth (STREAM copy, all cores)
    cores_per_node: int = 128
    alpha_net: float = 1.5e-6
    beta_net: float = 12e9
    allreduce_stage_net: float = 2e-6

    def _ab(self, P: int) -> tuple[float, float, float]:
        if P <= self.cores_per_node:
            return self.alpha, self.beta, self.allreduce_stage
        return self.alpha_net, self.beta_net, self.allreduce_stage_net

    def p2p(self, P: int, nbytes: float) -> float:
        """A neighbour (halo) message.  Beyond one node the boundary ranks of a node share its
        network link: with a square block of ranks per node about √(cores) of them talk off-node."""
        a, b, _ = self._ab(P)
        if P > self.cores_per_node:
            b = min(self.beta, b / math.sqrt(self.cores_per_node))
        return a + nbytes / b

    def bulk_beta(self, P: int) -> float:
        """Per-rank bandwidth when every rank moves data off-node at once (all-to-all, allgather)."""
        if P <= self.cores_per_node:
            return self.beta
        return min(self.beta, self.beta_net / self.cores_per_node)

    def allreduce(self, P: int, nbytes: float = 8.0) -> float:
        if P <= 1:
            return 0.0
        _, b, s = self._ab(P)
        return math.ceil(math.log2(P)) * (s + nbytes / b)

    def allgather(self, P: int, total_bytes: float) -> float:
        if P <= 1:
            return 0.0
        a = self._ab(P)[0]
        return math.ceil(math.log2(P)) * a + total_bytes * (P - 1) / P / self.bulk_beta(P)

    def alltoall_counts(self, P: int) -> float:
        """Dense all-to-all of one int per pair (Bruck: log P rounds of P/2 ints)."""
        if P <= 1:
            return 0.0
        a, b, _ = self._ab(P)
        return math.ceil(math.log2(P)) * (a + 4.0 * P / 2 / b)

    def bandwidth_share(self, P: int) -> float:
        """Memory bandwidth available to one rank (B/s) when min(P, cores_per_node) share a node."""
        return self.stream_node / max(1, min(P, self.cores_per_node))


@dataclass
class CahnHilliardModel:
    """Time per step of the implicit CH solver on ``n_cells`` cells (``dim`` dimensions), P ranks."""

    n_cells: float
    dim: int = 2
    dof: int = 2
    n_newton: float = 2.0            # Newton iterations per step
    n_krylov: float = 5.0            # Krylov iterations per Newton iteration
    c_res: float = 2e-7              # s per cell per residual evaluation (1 rank)
    c_jac: float = 5e-7              # s per cell per Jacobian assembly
    c_matvec: float = 5e-8           # s per cell per MatMult
    c_vec: float = 3e-8              # s per cell per Krylov iteration of vector work (orthogonalisation)
    c_fft: float = 3e-8              # s per cell per log2(cell) of one FFT+inverse pair (PC apply)
    pc: str = "allgather-fft"        # "allgather-fft" | "pencil-fft" | "mg"
    mg_levels_work: float = 4.0      # multigrid V-cycle cost in matvec equivalents
    bytes_per_cell: float = 48.0     # memory traffic per cell of a matvec (for the bandwidth cap)
    reductions_per_krylov: float = 2.0

    def halo(self, P: int, m: Machine) -> float:
        """One ghost exchange: 2·dim faces of (N/P)^((d-1)/d) cells × dof doubles."""
        if P <= 1:
            return 0.0
        face = (self.n_cells / P) ** ((self.dim - 1) / self.dim)
        return 2 * self.dim * m.p2p(P, face * self.dof * 8.0)

    def pc_time(self, P: int, m: Machine) -> float:
        N = self.n_cells
        if self.pc == "allgather-fft":
            return m.allgather(P, N * self.dof * 8.0) + self.c_fft * N * math.log2(max(N, 2))
        if self.pc == "pencil-fft":
            transposes = 4  # forward + inverse, two transposes each (pencil decomposition)
            per = (math.sqrt(P) * m._ab(P)[0] + N * self.dof * 8.0 / P / m.bulk_beta(P)) if P > 1 else 0.0
            return self.c_fft * N * math.log2(max(N, 2)) / P + transposes * per
        if self.pc == "mg":
            levels = max(1, int(math.log2(max(N / P, 4)) / self.dim))
            return (self.mg_levels_work * self.matvec(P, m) + levels * self.halo(P, m)
                    + math.ceil(math.log2(max(P, 2))) * m._ab(P)[0])
        raise ValueError(f"unknown pc {self.pc!r}")

    def matvec(self, P: int, m: Machine) -> float:
        return self.n_cells / P * max(self.c_matvec, self.bytes_per_cell / m.bandwidth_share(P)) + self.halo(P, m)

    def parts(self, P: int, m: Machine) -> dict:
        """Seconds per time step by part."""
        n_loc = self.n_cells / P
        res = n_loc * self.c_res + self.halo(P, m)
        jac = n_loc * self.c_jac
        orth = n_loc * self.c_vec + self.reductions_per_krylov * m.allreduce(P)
        k = self.n_newton * self.n_krylov
        out = {
            "residual": self.n_newton * res,
            "jacobian": self.n_newton * jac,
            "matvec": k * self.matvec(P, m),
            "pc": k * self.pc_time(P, m),
            "krylov_vectors+reductions": k * orth,
        }
        out["total"] = sum(out.values())
        out["communication"] = (self.n_newton * self.halo(P, m) + k * (self.halo(P, m)
                                + self.reductions_per_krylov * m.allreduce(P)))
        if self.pc == "allgather-fft":
            out["communication"] += k * m.allgather(P, self.n_cells * self.dof * 8.0)
        return out


@dataclass
class FE2Model:
    """Time per macro Newton iteration of FE² with M RVEs on P ranks in groups of g."""

    n_rve: float                     # macro quadrature points = RVE solves per iteration
    group_size: int = 1
    t_rve1: float = 0.05             # s per RVE solve on 1 rank
    e_group: float = 0.8             # RVE parallel efficiency on g > 1 ranks
    macro_dofs: float = 1e4
    c_macro_qp: float = 2e-5         # s per quadrature point for macro assembly (1 rank)
    c_macro_dof: float = 1e-6        # s per dof per macro Krylov iteration
    n_macro_krylov: float = 30.0
    doubles_out: int = 6             # strain sent per RVE
    doubles_back: int = 46           # stress (6) + tangent (36) + scalars per RVE

    def t_rve(self, g: int) -> float:
        return self.t_rve1 if g == 1 else self.t_rve1 / (g * self.e_group)

    def parts(self, P: int, m: Machine) -> dict:
        g = self.group_size
        groups = max(1, P // g)
        per_group = math.ceil(self.n_rve / groups)
        micro = per_group * self.t_rve(g)
        # exchange: counts all-to-all + two Alltoallv (latency ∝ partners, volume ∝ RVEs of this rank)
        qp_per_rank = self.n_rve / P
        partners = min(groups, max(1.0, qp_per_rank)) if P > 1 else 0
        a, b, _ = m._ab(P)
        vol = max(qp_per_rank, per_group) * (self.doubles_out + self.doubles_back) * 8.0
        exchange = (2 * m.alltoall_counts(P) + 2 * partners * a + vol / m.bulk_beta(P)) if P > 1 else 0.0
        if g > 1:  # broadcast of the group's strains and the state inside the group
            exchange += math.ceil(math.log2(g)) * (a + per_group * self.doubles_out * 8.0 / b)
        macro = (self.n_rve / P * self.c_macro_qp
                 + self.n_macro_krylov * (self.macro_dofs / P * self.c_macro_dof
                                          + 2 * m.allreduce(P) + (2 * 3 * m.p2p(P, 8.0 * (self.macro_dofs / P) ** (2 / 3))
                                                                  if P > 1 else 0.0)))
        out = {"micro": micro, "exchange": exchange, "macro": macro}
        out["total"] = micro + exchange + macro
        out["idle_fraction"] = 1.0 - (self.n_rve * self.t_rve(g) * g / P) / micro if micro > 0 else 0.0
        return out


def scaling_table(model, machine: Machine, ranks: list[int], weak: dict | None = None) -> list[dict]:
    """Predicted times, speedups and efficiencies.  ``weak = {"attr": per_rank_value}`` rescales
    that attribute of the model with P (weak scaling); otherwise strong scaling."""
    import copy

    rows = []
    base = None
    for P in ranks:
        mdl = copy.copy(model)
        if weak:
            for k, v in weak.items():
                setattr(mdl, k, v * P)
        parts = mdl.parts(P, machine)
        if base is None:
            base = (P, parts["total"])
        P0, T0 = base
        if weak:
            eff = T0 / parts["total"]
        else:
            eff = T0 * P0 / (parts["total"] * P)
        rows.append({"ranks": P, **parts, "speedup": T0 / parts["total"], "efficiency": eff})
    return rows


# ----------------------------------------------------------------------------------------------
# calibration from measurements
# ----------------------------------------------------------------------------------------------

def machine_from_probes(stream_json: dict | None, mpi_json: dict | None, **kw) -> Machine:
    """A :class:`Machine` from ``bench stream`` / ``bench mpi`` JSON (missing parts: defaults)."""
    m = Machine(**kw)
    if stream_json:
        m.stream_node = float(stream_json["GBs"]["copy"]) * 1e9
    if mpi_json:
        if "latency_s" in mpi_json:
            m.alpha = float(mpi_json["latency_s"])
            m.beta = float(mpi_json["bandwidth_Bs"])
        P = int(mpi_json.get("ranks", 2))
        m.allreduce_stage = float(mpi_json["allreduce_s"]["1"]) / max(1, math.ceil(math.log2(max(P, 2))))
    return m


def events_of(petsc: dict) -> dict:
    """Merge the per-stage event tables of a parsed ``-log_view`` into ``{event: {count, max_s}}``."""
    out: dict = {}
    for evs in (petsc or {}).get("events", {}).values():
        for k, v in evs.items():
            e = out.setdefault(k, {"count": 0, "max_s": 0.0, "reductions": 0.0})
            e["count"] += v["count"]
            e["max_s"] += v["max_s"]
            e["reductions"] += v.get("reductions", 0.0)
    return out


def calibrate_ch(petsc: dict, n_cells: float, steps: int, dim: int = 2, pc: str = "allgather-fft") -> CahnHilliardModel:
    """Per-cell costs and iteration counts from a 1-rank ``-log_view`` of ``steps`` CH steps."""
    ev = events_of(petsc)

    def per(name):
        e = ev.get(name)
        if not e or not e["count"]:
            return None, 0
        return e["max_s"] / e["count"] / n_cells, e["count"]

    m = CahnHilliardModel(n_cells=n_cells, dim=dim, pc=pc)
    c, n_res = per("SNESFunctionEval")
    if c:
        m.c_res = c
    c, n_jac = per("SNESJacobianEval")
    if c:
        m.c_jac = c
    c, n_mv = per("MatMult")
    if c:
        m.c_matvec = c
    c, n_pc = per("PCApply")
    if c:
        m.c_fft = c / math.log2(max(n_cells, 2))
    vec = sum(ev.get(k, {}).get("max_s", 0.0) for k in ("VecMDot", "VecMAXPY", "VecNormalize", "VecNorm", "VecAXPY", "VecScale", "VecCopy"))
    if n_jac:
        m.n_newton = n_jac / steps
    elif n_res:
        m.n_newton = max(1.0, n_res / steps - 1)
    n_ksp_its = n_pc or n_mv
    if n_ksp_its and m.n_newton:
        m.n_krylov = n_ksp_its / (m.n_newton * steps)
        m.c_vec = vec / n_ksp_its / n_cells
    return m


def model_plot(tables: dict, path: str, title: str = "") -> str:
    """Efficiency against ranks for several predicted tables (``{label: rows}``), log x axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for label, rows in tables.items():
        P = [r["ranks"] for r in rows]
        ax[0].loglog(P, [r["total"] for r in rows], "o-", ms=3, label=label)
        ax[1].semilogx(P, [r["efficiency"] for r in rows], "o-", ms=3, label=label)
    ax[0].set(xlabel="MPI ranks", ylabel="time [s]", title="predicted time per step / iteration")
    ax[1].set(xlabel="MPI ranks", ylabel="parallel efficiency", ylim=(0, 1.1), title="predicted efficiency")
    ax[1].axhline(1, color="k", ls=":")
    for a in ax:
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def to_json(obj) -> str:
    if hasattr(obj, "__dataclass_fields__"):
        obj = asdict(obj)
    return json.dumps(obj, indent=1)
