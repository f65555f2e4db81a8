"""Self-describing parallel HDF5, XDMF sidecars for ParaView, atomic restartable checkpoints."""
from .hdf5 import open_h5, write_array, read_array, stamp  # noqa: F401
from .checkpoint import Checkpoint  # noqa: F401
from .xdmf import StructuredGrid, UnstructuredMesh, PointCloud, FieldWriter  # noqa: F401
