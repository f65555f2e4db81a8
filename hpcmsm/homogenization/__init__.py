"""RVE homogenization: voxel microstructures, KUBC/TUBC/periodic cell problems, effective tensors,
bounds and estimates, SVE ensembles and RVE-size studies (issue 4)."""
