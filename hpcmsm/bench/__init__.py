"""HPC operation tools: a DMDA stencil kernel, memory-bandwidth and MPI probes, the strong/weak
scaling harness, job-array sweep helpers and the performance model (issue 9)."""
