"""``hpcmsm scales``: the scale-separation advisor."""
from __future__ import annotations

import json

NAME = "scales"
HELP = "scale-separation advisor: ℓ/L, τ/T (τ = ℓ²/D) → sequential or concurrent coupling"
ORDER = 20


def add_arguments(p) -> None:
    p.add_argument("input", nargs="*", help="TOML files with a [scales] table (or [[scales]] array)")
    p.add_argument("--classic", action="store_true", help="run the three textbook cases")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def run(args, comm) -> int:
    from ..config import from_dict, read_toml
    from ..errors import ConfigError, InputError
    from ..parallel import rprint
    from ..scales import CLASSIC_CASES, ScalesInput, advise, report

    cases = []
    if args.classic or not args.input:
        cases += [(f"<classic:{k}>", ScalesInput(**v)) for k, v in CLASSIC_CASES.items()]
    for path in args.input:
        data, _ = read_toml(path)
        unknown = set(data) - {"scales"}
        if unknown:
            raise ConfigError(f"unknown table (expected [scales])", file=path, key=sorted(unknown)[0])
        if "scales" not in data:
            raise ConfigError("missing [scales] table", file=path)
        tables = data["scales"] if isinstance(data["scales"], list) else [data["scales"]]
        for i, t in enumerate(tables):
            cases.append((path, from_dict(ScalesInput, t, file=path, prefix="scales" if len(tables) == 1 else f"scales[{i}]")))
    if not cases:
        raise InputError("no cases")
    results = [advise(c) for _, c in cases]
    for r in results:
        rprint(comm, report(r))
    if args.json and comm.rank == 0:
        with open(args.json, "w") as fh:
            json.dump([r.as_dict() for r in results], fh, indent=1)
    return 0
