"""One module per command; see :mod:`hpcmsm.cli` for the protocol."""
