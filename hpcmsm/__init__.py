"""hpcmsm: HPC multiscale modelling on MPI and PETSc.

Macroscale finite elements, RVE homogenization, FE², phase field, Cauchy–Born and the
quasicontinuum method, with verification and validation built in. Library code never uses a
module-level communicator: every object that touches MPI receives ``comm`` explicitly.
"""

__version__ = "0.1.0"

from .errors import HpcmsmError, InputError, ConfigError  # noqa: F401
