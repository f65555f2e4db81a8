"""Constitutive laws: pure numpy, vectorised over quadrature points (see :mod:`.base`)."""
from .base import (Material, LinearElastic, isotropic_stiffness, mandel_to_tensor, tensor_to_mandel,  # noqa: F401
                   lame_from_young_poisson)
