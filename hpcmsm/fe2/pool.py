"""The RVE pool: macro quadrature points farmed out to groups of ranks, batched MPI exchange.

* The ranks are split into groups of ``group_size`` (:class:`hpcmsm.parallel.Ensemble`); each group
  holds one micro-model object (same microstructure everywhere) and the committed + trial state
  vectors of the quadrature points (QPs) assigned to it.  All ranks of a group keep the same state
  copies (the micro model splits its voxels over the group).
* The macro problem is decomposed over the whole communicator: rank r owns the QPs of its
  elements.  Once per macro Newton iteration, :meth:`RVEPool.evaluate` routes every QP's strain
  from its macro owner to the head of its group (one ``Alltoallv``), the group broadcasts them,
  solves its RVEs, and the heads route stress, tangent and a few scalars back (one ``Alltoallv``).
  No files, one pair of collectives per iteration.
* Assignment: static round-robin, or cost-balanced (greedy longest-processing-time using the
  measured per-QP cost of the previous step); committed states migrate with the assignment.
* History: solves always start from the committed state; :meth:`commit` promotes the last trial
  only when the macro step has converged.
* Checkpoint: committed states are written in natural QP order (rank-count and group-size
  independent) and re-routed to whatever assignment the restarted run uses.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConvergenceError, InputError
from ..parallel import Ensemble, block_range


# ----------------------------------------------------------------------------------------------
def route(comm, dest: np.ndarray, ids: np.ndarray, rows: np.ndarray):
    """Send row ``i`` (with its id) to rank ``dest[i]``; returns the received (ids, rows).

    One ``alltoall`` of counts + two ``Alltoallv``; received rows are in source-rank order.
    """
    from mpi4py import MPI

    rows = np.ascontiguousarray(rows, dtype=float)
    width = int(np.prod(rows.shape[1:])) if rows.ndim > 1 else 1
    rows = rows.reshape(len(ids), width)
    order = np.argsort(dest, kind="stable")
    scount = np.bincount(dest, minlength=comm.size).astype(np.int64)
    rcount = np.array(comm.alltoall(scount.tolist()), dtype=np.int64)
    sdisp = np.concatenate([[0], np.cumsum(scount)[:-1]])
    rdisp = np.concatenate([[0], np.cumsum(rcount)[:-1]])
    rids = np.empty(int(rcount.sum()), dtype=np.int64)
    comm.Alltoallv([np.ascontiguousarray(ids[order], dtype=np.int64), (scount, sdisp), MPI.INT64_T],
                   [rids, (rcount, rdisp), MPI.INT64_T])
    rrows = np.empty((int(rcount.sum()), width))
    comm.Alltoallv([np.ascontiguousarray(rows[order]), (scount * width, sdisp * width), MPI.DOUBLE],
                   [rrows, (rcount * width, rdisp * width), MPI.DOUBLE])
    return rids, rrows


def balance_lpt(cost: np.ndarray, ngroups: int) -> np.ndarray:
    """Greedy longest-processing-time assignment of tasks with ``cost`` to ``ngroups`` bins.

    Deterministic (ties broken by task id); makespan ≤ 4/3 of the optimum (Graham).
    """
    import heapq

    order = np.lexsort((np.arange(len(cost)), -np.asarray(cost)))
    heap = [(0.0, g) for g in range(ngroups)]
    owner = np.empty(len(cost), dtype=int)
    for t in order:
        load, g = heapq.heappop(heap)
        owner[t] = g
        heapq.heappush(heap, (load + float(cost[t]), g))
    return owner


INFO_KEYS = ("converged", "iterations", "plastic", "psi", "dissipation", "hill_mandel",
             "peeq", "reused", "cost")


@dataclass
class PoolStats:
    solves: int = 0
    reused: int = 0
    newton_iterations: int = 0
    rve_time: float = 0.0          # this rank's time inside micro solves
    exchange_time: float = 0.0     # time in the routing collectives (includes waiting for others)
    evaluations: int = 0
    bytes_sent: int = 0
    reuse_time: float = 0.0        # time spent in exact elastic reuses
    full_time: float = 0.0         # time spent in full RVE Newton solves


class RVEPool:
    """Farm ``nqp`` macro quadrature points' RVEs over groups of ``group_size`` ranks.

    ``micro_factory(group_comm)`` builds the group's micro model; ``qp_owner[i]`` is the macro
    rank that owns QP ``i`` (same array on every rank).
    """

    def __init__(self, comm, micro_factory, nqp: int, qp_owner: np.ndarray, group_size: int = 1,
                 balance: str = "round_robin", elastic_reuse: bool = True, cost_measure: str = "time"):
        if balance not in ("round_robin", "cost", "block"):
            raise InputError(f"pool: unknown balance {balance!r} (round_robin, block or cost)")
        self.comm = comm
        self.ens = Ensemble(comm, group_size, name="rve")
        self.micro = micro_factory(self.ens.sub)
        self.nqp = int(nqp)
        self.qp_owner = np.asarray(qp_owner, dtype=int)
        self.balance = balance
        self.elastic_reuse = elastic_reuse
        self.cost_measure = cost_measure
        self.m = self.micro.m
        self.S = self.micro.state_size
        g = self.ens.ngroups
        if balance == "block":
            self.assign = np.repeat(np.arange(g), [b - a for a, b in (block_range(nqp, g, k) for k in range(g))])
        else:
            self.assign = np.arange(nqp) % g
        self.mine = np.flatnonzero(self.assign == self.ens.group)
        s0 = self.micro.initial_state()
        self.committed = np.tile(s0, (len(self.mine), 1))
        self.trial = None
        self.cost = np.zeros(nqp)            # this step's accumulated cost per QP (global after sync)
        self._cost_local = {}
        self.stats = PoolStats()
        self.last_info = None                # per local-macro-QP info of the last evaluation
        self.failed = []

    # ------------------------------------------------------------------------------------------
    def head_of(self, group: np.ndarray) -> np.ndarray:
        return np.asarray(group) * self.ens.group_size

    def evaluate(self, qp_ids: np.ndarray, strains: np.ndarray):
        """Collective on the whole communicator: homogenized stress (n, m), tangent (n, m, m) and
        info (n, len(INFO_KEYS)) for this rank's macro QPs ``qp_ids`` at macro ``strains``."""
        comm, ens, m = self.comm, self.ens, self.m
        t0 = time.perf_counter()
        rids, rE = route(comm, self.head_of(self.assign[qp_ids]), np.asarray(qp_ids), strains)
        if ens.group_size > 1:  # the group's other ranks get the same batch
            rids = ens.sub.bcast(rids if ens.sub.rank == 0 else None, root=0)
            rE = ens.sub.bcast(rE if ens.sub.rank == 0 else None, root=0)
        t1 = time.perf_counter()
        pos = np.searchsorted(self.mine, rids)
        if len(rids) and not np.array_equal(self.mine[pos], rids):
            raise RuntimeError("pool: received a QP not assigned to this group")
        if self.trial is None or len(self.trial) != len(self.mine):
            self.trial = self.committed.copy()
        out = np.empty((len(rids), m + m * m + len(INFO_KEYS)))
        for k, (qp, p) in enumerate(zip(rids, pos)):
            ts = time.perf_counter()
            res = None
            if self.elastic_reuse and hasattr(self.micro, "try_elastic"):
                res = self.micro.try_elastic(rE[k], self.committed[p])
            if res is None:
                if getattr(self.micro, "warm_start", False):   # last trial of this step as Newton start
                    res = self.micro.solve(rE[k], self.committed[p], guess=self.trial[p])
                else:
                    res = self.micro.solve(rE[k], self.committed[p])
            S, C, new, info = res
            dt = time.perf_counter() - ts
            if info.get("reused", False):
                self.stats.reuse_time += dt
            else:
                self.stats.full_time += dt
            self.trial[p] = new
            if self.cost_measure == "time":
                cost = dt
            else:   # deterministic proxy: factorizations of a full solve; a reuse ≈ ⅕ of one
                cost = 0.2 if info.get("reused", False) else 2.0 + info.get("iterations", 0)
            self._cost_local[int(qp)] = self._cost_local.get(int(qp), 0.0) + cost
            info = dict(info, cost=cost)
            out[k, :m] = S
            out[k, m:m + m * m] = np.asarray(C).ravel()
            out[k, m + m * m:] = [float(info.get(key, 0.0)) for key in INFO_KEYS]
            self.stats.solves += 1
            self.stats.reused += int(bool(info.get("reused", False)))
            self.stats.newton_iterations += int(info.get("iterations", 0))
        t2 = time.perf_counter()
        self.stats.rve_time += t2 - t1
        # results back to the macro owners (heads only send)
        if ens.sub.rank != 0:
            rids, out = rids[:0], out[:0]
        bids, back = route(comm, self.qp_owner[rids], rids, out)
        t3 = time.perf_counter()
        self.stats.exchange_time += (t1 - t0) + (t3 - t2)
        self.stats.evaluations += 1
        self.stats.bytes_sent += 8 * (strains.size + out.size)
        order = np.argsort(bids)
        bids, back = bids[order], back[order]
        want = np.argsort(np.argsort(qp_ids))
        back = back[want]
        stress = back[:, :m]
        tangent = back[:, m:m + m * m].reshape(-1, m, m)
        info = back[:, m + m * m:]
        self.last_info = info
        bad = np.flatnonzero(info[:, 0] < 0.5)
        nbad = comm.allreduce(len(bad))
        if nbad:
            first = comm.allreduce(int(np.asarray(qp_ids)[bad].min()) if len(bad) else self.nqp, op=_min())
            raise ConvergenceError(f"RVE Newton did not converge at {nbad} quadrature point(s) "
                                   f"(first: QP {first})")
        return stress, tangent, info

    # ------------------------------------------------------------------------------------------
    def commit(self) -> None:
        """Promote the trial states (call once the macro step has converged)."""
        if self.trial is not None:
            self.committed = self.trial
            self.trial = None

    def discard(self) -> None:
        """Forget the trial states (macro step rejected / cut back)."""
        self.trial = None
        self._cost_local = {}

    def step_costs(self) -> np.ndarray:
        """Collective: this step's cost per QP (sum over the step's evaluations), then reset."""
        loc = np.zeros(self.nqp)
        if self.ens.sub.rank == 0:
            for k, v in self._cost_local.items():
                loc[k] = v
        tot = np.empty_like(loc)
        from mpi4py import MPI

        self.comm.Allreduce(loc, tot, op=MPI.SUM)
        self._cost_local = {}
        self.cost = tot
        return tot

    def rebalance(self, cost: np.ndarray | None = None, min_gain: float = 1.0) -> float:
        """Collective: reassign QPs to groups by measured cost (LPT) and migrate the committed
        states, but only if the predicted makespan gain (old max group load / new max group load)
        exceeds ``min_gain`` -- measured costs are noisy and a migration moves every RVE state, so
        a few per cent of predicted gain is not worth it.  Returns the gain acted on (1.0: none)."""
        cost = self.cost if cost is None else np.asarray(cost, float)
        g = self.ens.ngroups
        if g == 1 or cost.sum() <= 0:
            return 1.0
        new = balance_lpt(cost, g)
        old_load = np.bincount(self.assign, weights=cost, minlength=g).max()
        new_load = np.bincount(new, weights=cost, minlength=g).max()
        if new_load >= old_load or old_load <= min_gain * new_load:
            return 1.0
        self._migrate(new)
        return float(old_load / new_load)

    def _migrate(self, new_assign: np.ndarray) -> None:
        ens = self.ens
        ids = self.mine if ens.sub.rank == 0 else self.mine[:0]
        rows = self.committed if ens.sub.rank == 0 else self.committed[:0]
        rids, rrows = route(self.comm, self.head_of(new_assign[ids]), ids, rows)
        self.assign = np.asarray(new_assign, dtype=int)
        self.mine = np.flatnonzero(self.assign == ens.group)
        if ens.group_size > 1:
            rids = ens.sub.bcast(rids if ens.sub.rank == 0 else None, root=0)
            rrows = ens.sub.bcast(rrows if ens.sub.rank == 0 else None, root=0)
        order = np.argsort(rids)
        self.committed = rrows[order].reshape(len(self.mine), self.S)
        self.trial = None

    # ------------------------------------------------------------------------------------------
    def natural_states(self) -> tuple[np.ndarray, int]:
        """Committed states routed to a row block in natural QP order (for checkpoints/output).
        Returns (rows, start)."""
        ens = self.ens
        s, e = block_range(self.nqp, self.comm.size, self.comm.rank)
        starts = np.array([block_range(self.nqp, self.comm.size, r)[0] for r in range(self.comm.size)])
        ids = self.mine if ens.sub.rank == 0 else self.mine[:0]
        rows = self.committed if ens.sub.rank == 0 else self.committed[:0]
        dest = np.searchsorted(starts, ids, side="right") - 1
        rids, rrows = route(self.comm, dest, ids, rows)
        order = np.argsort(rids)
        assert len(rids) == e - s
        return rrows[order].reshape(e - s, self.S), s

    def load_natural_states(self, rows: np.ndarray, start: int) -> None:
        """Inverse of :meth:`natural_states` (restart): route block rows to the current groups."""
        ens = self.ens
        ids = np.arange(start, start + len(rows))
        rids, rrows = route(self.comm, self.head_of(self.assign[ids]), ids, rows)
        if ens.group_size > 1:
            rids = ens.sub.bcast(rids if ens.sub.rank == 0 else None, root=0)
            rrows = ens.sub.bcast(rrows if ens.sub.rank == 0 else None, root=0)
        order = np.argsort(rids)
        if not np.array_equal(rids[order], self.mine):
            raise InputError("restart: checkpointed RVE states do not match this run's quadrature points")
        self.committed = rrows[order].reshape(len(self.mine), self.S)
        self.trial = None

    def set_assignment(self, assign: np.ndarray) -> None:
        """Collective: adopt a given assignment (e.g. from a checkpoint), migrating states."""
        assign = np.asarray(assign, dtype=int)
        if assign.max(initial=0) >= self.ens.ngroups:  # other group count: fall back to round-robin
            assign = np.arange(self.nqp) % self.ens.ngroups
        self._migrate(assign)

    def free(self) -> None:
        self.ens.free()


def _min():
    from mpi4py import MPI

    return MPI.MIN


class HomogenizedMaterial:
    """FE² material: obeys :mod:`hpcmsm.materials.base`, evaluates the RVEs of the pool.

    The macro state is a per-QP version token: ``update`` returns a new token for the trial it
    computed; when the macro solver passes that token back as the committed state of the next
    update, the pool commits the matching trial first (so a caller that commits ``new_state``
    only on convergence gets RVE history committed only on convergence).  Explicit
    :meth:`commit` / :meth:`discard` are available to drivers that prefer them.
    """

    collective = True      # update() is collective over the pool's communicator

    def __init__(self, pool: RVEPool, qp_ids: np.ndarray, dim: int):
        self.pool, self.qp_ids, self.dim = pool, np.asarray(qp_ids, dtype=np.int64), dim
        self.m = pool.m
        # small: Mandel strain → stress (n, m), tangent (n, m, m); finite: F (n, d, d) →
        # P (n, d, d), A (n, d, d, d, d) (the finite-strain interface of materials.base)
        self.kind = "finite" if getattr(pool.micro, "kinematics", "small") == "finite" else "small"
        self._version = 0
        self._trial_version = None
        self.last_info = None

    def initial_state(self, nq: int) -> dict:
        return {"version": np.zeros(nq, dtype=np.int64)}

    def update(self, strain, state):
        v = self.pool.comm.allreduce(int(state["version"].max(initial=0)) if len(state["version"]) else 0,
                                     op=_max())
        if self._trial_version is not None and v == self._trial_version:
            self.commit()
        n = len(self.qp_ids)
        stress, tangent, info = self.pool.evaluate(self.qp_ids, np.asarray(strain, float).reshape(n, self.m))
        if self.kind == "finite":
            d = self.dim
            stress, tangent = stress.reshape(n, d, d), tangent.reshape(n, d, d, d, d)
        self.last_info = info
        self._trial_version = self._version + 1
        return stress, tangent, {"version": np.full(len(self.qp_ids), self._trial_version, dtype=np.int64)}

    def commit(self) -> None:
        if self._trial_version is not None:
            self.pool.commit()
            self._version = self._trial_version
            self._trial_version = None

    def discard(self) -> None:
        self.pool.discard()
        self._trial_version = None

    def elastic_tangent(self) -> np.ndarray:
        return self.pool.micro.elastic_tangent()


def _max():
    from mpi4py import MPI

    return MPI.MAX
