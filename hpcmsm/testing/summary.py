"""Sum the per-leg JSON reports written by the pytest plugin: prints 'passed failed skipped'."""
from __future__ import annotations

import glob
import json
import os
import sys


def main(d: str) -> None:
    p = f = s = 0
    for path in glob.glob(os.path.join(d, "*.json")):
        with open(path) as fh:
            r = json.load(fh)
        p += r.get("passed", 0)
        f += r.get("failed", 0)
        s += r.get("skipped", 0)
    print(p, f, s)


if __name__ == "__main__":
    main(sys.argv[1])
