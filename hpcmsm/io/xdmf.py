"""Per-step HDF5 field files with an XDMF time-series sidecar that ParaView opens.

Each output step goes to its own file ``<name>_<step>.h5`` (written to a temporary name and
renamed, so a killed run never corrupts earlier output; on restart an existing step file is kept,
never overwritten).  Each step file describes itself (time, step, grid, field centring, units), so
the ``<name>.xdmf`` sidecar is always regenerated from the files present.

Grids: :class:`StructuredGrid` (co-rectilinear, DMDA boxes; arrays stored ``(nz, ny, nx)``),
:class:`UnstructuredMesh` (written once to ``<name>_mesh.h5``) and :class:`PointCloud` (atoms,
positions written per step).
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .hdf5 import open_h5, stamp, write_array

_XDMF_CELL = {
    "triangle": ("Triangle", 3), "quadrilateral": ("Quadrilateral", 4),
    "tetrahedron": ("Tetrahedron", 4), "hexahedron": ("Hexahedron", 8),
    "triangle6": ("Triangle_6", 6), "quadrilateral8": ("Quadrilateral_8", 8),
    "quadrilateral9": ("Quadrilateral_9", 9), "tetrahedron10": ("Tetrahedron_10", 10),
    "hexahedron20": ("Hexahedron_20", 20), "hexahedron27": ("Hexahedron_27", 27),
    "interval": ("Polyline", 2),
}


@dataclass
class StructuredGrid:
    """Uniform grid of ``shape`` nodes (x, y[, z] order) with ``origin`` and ``spacing``."""

    shape: Sequence[int]
    origin: Sequence[float] | None = None
    spacing: Sequence[float] | None = None

    def __post_init__(self):
        d = len(self.shape)
        self.origin = tuple(self.origin or (0.0,) * d)
        self.spacing = tuple(self.spacing or (1.0,) * d)


@dataclass
class UnstructuredMesh:
    """A mesh given by this rank's rows of ``points`` (n, gdim) and ``cells`` (global node ids)."""

    cell_type: str
    points: np.ndarray
    cells: np.ndarray

    def __post_init__(self):
        if self.cell_type not in _XDMF_CELL:
            raise ValueError(f"unknown cell type {self.cell_type!r}; known: {', '.join(_XDMF_CELL)}")


@dataclass
class PointCloud:
    """Points whose positions are written with every step (``points`` passed to ``write``)."""

    gdim: int = 3


def _attr_type(ncomp: int, gdim: int) -> str:
    if ncomp == 1:
        return "Scalar"
    if ncomp == 3:
        return "Vector"
    if ncomp == 9:
        return "Tensor"
    if ncomp == 6:
        return "Tensor6"
    return "Matrix"


class FieldWriter:
    """Write time steps of fields on one grid.  Collective on ``comm``.

    >>> w = FieldWriter("out", comm, "phase", StructuredGrid((200, 200), spacing=(1, 1)))
    >>> w.write(step, t, {"c": (c_local, (ys, xs))})           # DMDA box
    >>> w = FieldWriter("out", comm, "macro", UnstructuredMesh("triangle", pts, cells))
    >>> w.write(step, t, {"u": u_rows, "sigma_vm": dict(data=s_rows, center="Cell", unit="Pa")})
    """

    def __init__(self, outdir: str, comm, name: str, grid, *, command_line=None, input_text=None):
        self.outdir, self.comm, self.name, self.grid = outdir, comm, name, grid
        self.stamp_kw = dict(command_line=command_line, input_text=input_text)
        if comm.rank == 0:
            os.makedirs(outdir, exist_ok=True)
        comm.Barrier()
        self.mesh_file = None
        if isinstance(grid, UnstructuredMesh):
            self.mesh_file = f"{name}_mesh.h5"
            path = os.path.join(outdir, self.mesh_file)
            with open_h5(path + ".tmp", "w", comm) as f:
                stamp(f, comm=comm, **self.stamp_kw)
                write_array(f, "geometry", np.asarray(grid.points, dtype=float), comm, unit="m",
                            description="node coordinates")
                write_array(f, "topology", np.asarray(grid.cells, dtype=np.int64), comm,
                            description=f"{grid.cell_type} connectivity (global node ids)")
                f.attrs["cell_type"] = grid.cell_type
            comm.Barrier()
            if comm.rank == 0:
                os.replace(path + ".tmp", path)
            comm.Barrier()

    def step_path(self, step: int) -> str:
        return os.path.join(self.outdir, f"{self.name}_{step:06d}.h5")

    def write(self, step: int, time: float, fields: dict[str, Any], points: np.ndarray | None = None,
              attrs: dict | None = None) -> bool:
        """Write one step; returns False (and writes nothing) if that step file already exists."""
        path = self.step_path(step)
        exists = self.comm.bcast(os.path.exists(path) if self.comm.rank == 0 else None, root=0)
        if exists:
            return False
        tmp = path + ".tmp"
        with open_h5(tmp, "w", self.comm) as f:
            stamp(f, comm=self.comm, **self.stamp_kw)
            f.attrs["time"] = float(time)
            f.attrs["step"] = int(step)
            for k, v in (attrs or {}).items():
                f.attrs[k] = v
            if isinstance(self.grid, PointCloud):
                if points is None:
                    raise ValueError("PointCloud output needs points=")
                write_array(f, "geometry", np.asarray(points, dtype=float), self.comm, unit="m",
                            description="point positions")
            for fname, spec in fields.items():
                if not isinstance(spec, dict):
                    spec = ({"data": spec[0], "start": spec[1]} if isinstance(spec, tuple) else {"data": spec})
                data = np.asarray(spec["data"])
                center = spec.get("center", "Node")
                start = spec.get("start")
                gshape = spec.get("global_shape")
                if start is not None and gshape is None and isinstance(self.grid, StructuredGrid):
                    nodes = tuple(reversed(tuple(self.grid.shape)))
                    gshape = nodes if center == "Node" else tuple(n - 1 for n in nodes)
                dset = write_array(f, "fields/" + fname, data, self.comm, start=start, global_shape=gshape,
                                   unit=spec.get("unit", ""), description=spec.get("description", ""))
                dset.attrs["center"] = center
        self.comm.Barrier()
        if self.comm.rank == 0:
            os.replace(tmp, path)
            self.write_xdmf()
        self.comm.Barrier()
        return True

    # ------------------------------------------------------------------------------------------
    def steps(self) -> list[str]:
        pat = re.compile(re.escape(self.name) + r"_(\d{6})\.h5$")
        files = [p for p in glob.glob(os.path.join(self.outdir, f"{self.name}_*.h5")) if pat.search(p)]
        return sorted(files)

    def write_xdmf(self) -> str:
        """(Rank 0 only) regenerate ``<name>.xdmf`` from the step files present."""
        import h5py

        entries = []
        for p in self.steps():
            with h5py.File(p, "r") as f:
                fields = []
                for k, d in f["fields"].items() if "fields" in f else []:
                    fields.append((k, d.shape, str(d.dtype), d.attrs.get("center", "Node")))
                npts = f["geometry"].shape if "geometry" in f else None
                entries.append((float(f.attrs["time"]), os.path.basename(p), fields, npts))
        out = os.path.join(self.outdir, f"{self.name}.xdmf")
        with open(out + ".tmp", "w") as fh:
            fh.write(self._xdmf_text(entries))
        os.replace(out + ".tmp", out)
        return out

    def _topology_geometry(self, fname: str, npts) -> str:
        g = self.grid
        if isinstance(g, StructuredGrid):
            d = len(g.shape)
            dims = " ".join(str(n) for n in reversed(tuple(g.shape)))
            org = " ".join(repr(float(x)) for x in reversed(g.origin))
            spc = " ".join(repr(float(x)) for x in reversed(g.spacing))
            kind = "ORIGIN_DXDYDZ" if d == 3 else "ORIGIN_DXDY"
            return (f'<Topology TopologyType="{d}DCoRectMesh" Dimensions="{dims}"/>\n'
                    f'<Geometry GeometryType="{kind}">'
                    f'<DataItem Format="XML" Dimensions="{d}">{org}</DataItem>'
                    f'<DataItem Format="XML" Dimensions="{d}">{spc}</DataItem></Geometry>\n')
        if isinstance(g, UnstructuredMesh):
            import h5py

            with h5py.File(os.path.join(self.outdir, self.mesh_file), "r") as f:
                gshape, tshape = f["geometry"].shape, f["topology"].shape
            xtype, _ = _XDMF_CELL[g.cell_type]
            geo = "XY" if gshape[1] == 2 else "XYZ"
            return (f'<Topology TopologyType="{xtype}" NumberOfElements="{tshape[0]}">'
                    f'<DataItem Format="HDF" NumberType="Int" Precision="8" Dimensions="{tshape[0]} {tshape[1]}">'
                    f'{self.mesh_file}:/topology</DataItem></Topology>\n'
                    f'<Geometry GeometryType="{geo}"><DataItem Format="HDF" Precision="8" '
                    f'Dimensions="{gshape[0]} {gshape[1]}">{self.mesh_file}:/geometry</DataItem></Geometry>\n')
        n, gd = npts
        geo = "XY" if gd == 2 else "XYZ"
        return (f'<Topology TopologyType="Polyvertex" NumberOfElements="{n}"/>\n'
                f'<Geometry GeometryType="{geo}"><DataItem Format="HDF" Precision="8" Dimensions="{n} {gd}">'
                f'{fname}:/geometry</DataItem></Geometry>\n')

    def _xdmf_text(self, entries) -> str:
        lines = ['<?xml version="1.0"?>', '<Xdmf Version="3.0"><Domain>',
                 f'<Grid Name="{self.name}" GridType="Collection" CollectionType="Temporal">']
        npt_dims = 0
        if isinstance(self.grid, StructuredGrid):
            npt_dims = len(self.grid.shape)
        for time, fname, fields, npts in entries:
            lines.append(f'<Grid Name="step" GridType="Uniform"><Time Value="{time!r}"/>')
            lines.append(self._topology_geometry(fname, npts).rstrip())
            for k, shape, dtype, center in fields:
                lead = npt_dims if npt_dims else 1
                ncomp = int(np.prod(shape[lead:])) if len(shape) > lead else 1
                atype = _attr_type(ncomp, 3)
                prec = 8 if "64" in dtype else 4
                ntype = "Int" if "int" in dtype else "Float"
                dims = " ".join(str(s) for s in shape)
                lines.append(f'<Attribute Name="{k}" AttributeType="{atype}" Center="{center}">'
                             f'<DataItem Format="HDF" NumberType="{ntype}" Precision="{prec}" '
                             f'Dimensions="{dims}">{fname}:/fields/{k}</DataItem></Attribute>')
            lines.append("</Grid>")
        lines += ["</Grid>", "</Domain></Xdmf>", ""]
        return "\n".join(lines)
