"""Phase behaviours for cell problems: conductors, (an)isotropic elastic phases, grain rotations.

Every phase object follows the shared material interface of :mod:`hpcmsm.materials.base`
(``stress, tangent, new_state = update(strain, state)``, vectorised over points), so a history
material (J2 plasticity, ...) can replace a linear one without touching the RVE solver.  Linear
phases also expose ``C`` (their constant tangent), which lets the solver build one element matrix
per phase instead of one per voxel.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..materials.base import LinearElastic, check_stiffness, isotropic_stiffness, mandel_to_tensor, tensor_to_mandel


class LinearConductor:
    """Linear conduction ``j = K ∇T`` with a symmetric positive definite (d, d) tensor [W/(m K)].

    Uses the materials interface with "strain" = gradient and "stress" = flux.
    """

    kind = "small"

    def __init__(self, K):
        K = np.atleast_2d(np.asarray(K, dtype=float))
        if K.shape[0] != K.shape[1] or K.shape[0] not in (2, 3):
            raise InputError(f"conductivity: expected a 2x2 or 3x3 tensor, got shape {K.shape}")
        if not np.allclose(K, K.T, rtol=1e-10, atol=1e-14 * np.abs(K).max()):
            raise InputError("conductivity: tensor is not symmetric")
        if np.linalg.eigvalsh(K).min() <= 0:
            raise InputError("conductivity: tensor is not positive definite")
        self.C = K
        self.dim = K.shape[0]

    @classmethod
    def isotropic(cls, dim: int, k: float) -> "LinearConductor":
        if not k > 0:
            raise InputError(f"conductivity must be positive, got {k}")
        return cls(k * np.eye(dim))

    def initial_state(self, nq: int) -> dict:
        return {}

    def update(self, strain, state):
        strain = np.asarray(strain, dtype=float)
        return strain @ self.C.T, np.broadcast_to(self.C, strain.shape[:1] + self.C.shape).copy(), state

    def energy(self, strain, state=None):
        return 0.5 * np.einsum("qi,ij,qj->q", strain, self.C, strain)


def cubic_stiffness(C11: float, C12: float, C44: float) -> np.ndarray:
    """Cubic-crystal stiffness (6, 6) in Mandel notation from Voigt constants C11, C12, C44."""
    C = np.zeros((6, 6))
    C[:3, :3] = C12
    C[np.arange(3), np.arange(3)] = C11
    C[np.arange(3, 6), np.arange(3, 6)] = 2 * C44
    return check_stiffness(C, "cubic stiffness")


def mandel_rotation(R: np.ndarray) -> np.ndarray:
    """Mandel rotation matrices Q (…, m, m) with ``ε'_M = Q ε_M`` for rotations R (…, d, d)."""
    R = np.asarray(R, dtype=float)
    d = R.shape[-1]
    m = 3 if d == 2 else 6
    cols = []
    for k in range(m):
        e = np.zeros(m)
        e[k] = 1.0
        T = mandel_to_tensor(e)
        cols.append(tensor_to_mandel(R @ T @ np.swapaxes(R, -1, -2)))
    return np.stack(cols, axis=-1)


def rotate_tensor(C: np.ndarray, R: np.ndarray, kind: str) -> np.ndarray:
    """Rotate a Mandel stiffness (kind "elasticity") or a conductivity (d, d) by R (…, d, d)."""
    if kind == "conductivity":
        return R @ C @ np.swapaxes(R, -1, -2)
    Q = mandel_rotation(R)
    return Q @ C @ np.swapaxes(Q, -1, -2)


def random_rotations(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """n uniformly distributed rotations (n, d, d) (Haar measure in 3D via unit quaternions)."""
    if dim == 2:
        t = rng.uniform(0, 2 * np.pi, n)
        c, s = np.cos(t), np.sin(t)
        return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)


def make_phase(kind: str, dim: int, tensor: np.ndarray):
    """Material object of the right kind for a constant tensor (conductivity or Mandel stiffness)."""
    if kind == "conductivity":
        return LinearConductor(tensor)
    return LinearElastic(tensor)


def isotropic_phase(kind: str, dim: int, *, k: float | None = None, E: float | None = None,
                    nu: float | None = None):
    if kind == "conductivity":
        return LinearConductor.isotropic(dim, k)
    return LinearElastic(isotropic_stiffness(dim, E, nu))


def constant_tangent(material) -> np.ndarray | None:
    """The constant (m, m) tangent of a linear phase, or None for a general (history) material."""
    C = getattr(material, "C", None)
    if isinstance(material, (LinearElastic, LinearConductor)) and C is not None and np.ndim(C) == 2:
        return np.asarray(C, dtype=float)
    return None
