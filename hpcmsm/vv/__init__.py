"""Verification and validation: manufactured solutions, convergence studies (orders, Richardson,
GCI), goal-oriented DWR error estimation with adaptive refinement, validation with UQ."""
