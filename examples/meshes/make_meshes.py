"""Regenerate the example Gmsh meshes (Gmsh itself is not needed):

    ./run python examples/meshes/make_meshes.py

plate_hole_quad.msh / plate_hole_tri.msh: quarter of a 10 x 10 plate with a hole of radius 3 at
the origin, physical groups hole, left (x=0), bottom (y=0), right, top and the surface plate."""
import os

from hpcmsm.fem.mesh import plate_with_hole_global, write_gmsh2

HERE = os.path.dirname(os.path.abspath(__file__))

for cell, name in (("quadrilateral", "plate_hole_quad.msh"), ("triangle", "plate_hole_tri.msh")):
    g = plate_with_hole_global(10.0, 3.0, 16, 8, cell, grading=1.4)
    groups = {nm: (tag, g.facets[g.facet_tags == tag]) for nm, tag in g.facet_names.items()}
    write_gmsh2(os.path.join(HERE, name), g, groups)
    print("wrote", name, len(g.cells), "cells")
