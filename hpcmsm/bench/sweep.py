"""Parameter sweeps and ensembles as SLURM job arrays: sweep tables, input rendering, gathering.

A *sweep table* has one parameter set per row; array task ``SLURM_ARRAY_TASK_ID = i`` runs row
``i`` (0-based).  Formats:

* CSV with a header line (``micro_length,macro_length``; numbers are parsed, other cells stay text);
* TOML with ``[[row]]`` tables (one per row), or a ``[grid]`` table of lists whose Cartesian
  product is the table (last key varies fastest), e.g. an SVE ensemble
  ``[grid]  size = [8, 16, 32]  seed = [0, 1, 2, 3]``; a ``[fixed]`` table adds constants.

``row`` renders a TOML template with ``${name}`` placeholders (:class:`string.Template`; write
``$$`` for a literal ``$``; also ``${task_id}`` and ``${task_dir}``) into ``<task_dir>/input.toml``
and stores the row as ``params.json``.  ``gather`` (the dependent job) reads every task
directory's ``params.json``, ``exit_code`` and the numbers in its JSON outputs (flattened to
dotted keys), and writes one HDF5 file (``/params/<name>``, ``/results/<key>`` with NaN where a
task failed or lacks the key, ``/status``) and a summary PNG (``y`` against ``x`` with mean ± std
over repeated ``x`` — e.g. the SVE scatter against size — or a histogram when ``x`` is absent).

Command line (plain Python, no MPI): ``python -m hpcmsm.bench.sweep count|row|gather ...``.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import string
import sys

from ..errors import InputError


def _num(s: str):
    s = s.strip()
    for conv in (int, float):
        try:
            return conv(s)
        except ValueError:
            pass
    return s


def read_table(path: str) -> list[dict]:
    """Rows of a sweep table (CSV or TOML), each a ``{name: value}`` dict, in order."""
    if not os.path.exists(path):
        raise InputError(f"{path}: sweep table does not exist")
    if path.endswith(".csv"):
        with open(path, newline="") as fh:
            rows = [{k.strip(): _num(v) for k, v in r.items()} for r in csv.DictReader(fh) if any(r.values())]
    elif path.endswith(".toml"):
        from ..config import read_toml

        data, _ = read_toml(path)
        unknown = set(data) - {"row", "grid", "fixed"}
        if unknown:
            raise InputError(f"{path}: unknown table [{sorted(unknown)[0]}] (expected [[row]], [grid], [fixed])")
        if ("row" in data) == ("grid" in data):
            raise InputError(f"{path}: give either [[row]] tables or one [grid] table")
        if "row" in data:
            rows = [dict(r) for r in data["row"]]
        else:
            grid = data["grid"]
            for k, v in grid.items():
                if not isinstance(v, list) or not v:
                    raise InputError(f"{path}: 'grid.{k}': expected a non-empty list")
            keys = list(grid)
            rows = [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]
        for r in rows:
            for k, v in data.get("fixed", {}).items():
                r.setdefault(k, v)
    else:
        raise InputError(f"{path}: sweep table must be .csv or .toml")
    if not rows:
        raise InputError(f"{path}: sweep table has no rows")
    return rows


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def render_row(table: str, index: int, template: str | None, task_dir: str) -> dict:
    """Write ``task_dir/params.json`` (and ``input.toml`` from ``template``); return the row."""
    rows = read_table(table)
    if not 0 <= index < len(rows):
        raise InputError(f"{table}: row {index} requested but the table has {len(rows)} rows "
                         f"(submit with --array=0-{len(rows) - 1})")
    row = rows[index]
    os.makedirs(task_dir, exist_ok=True)
    if template:
        with open(template) as fh:
            tpl = string.Template(fh.read())
        subs = {k: _toml_value(v) for k, v in row.items()}
        subs.update(task_id=str(index), task_dir=os.path.abspath(task_dir))
        try:
            text = tpl.substitute(subs)
        except KeyError as e:
            raise InputError(f"{template}: placeholder ${{{e.args[0]}}} is not a column of {table}") from None
        with open(os.path.join(task_dir, "input.toml"), "w") as fh:
            fh.write(text)
    with open(os.path.join(task_dir, "params.json"), "w") as fh:
        json.dump({"task_id": index, "params": row}, fh, indent=1)
    return row


def flatten_numbers(obj, prefix: str = "") -> dict:
    """Numeric leaves of a JSON object as ``{"a.b.0.c": value}`` (lists of dicts indexed)."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten_numbers(v, f"{prefix}{k}."))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(flatten_numbers(v, f"{prefix}{i}."))
    elif isinstance(obj, bool):
        out[prefix[:-1]] = float(obj)
    elif isinstance(obj, (int, float)):
        out[prefix[:-1]] = float(obj)
    return out


def task_dirs(root: str) -> dict[int, str]:
    out = {}
    for d in sorted(os.listdir(root)):
        p = os.path.join(root, d, "params.json")
        if d.startswith("task_") and os.path.exists(p):
            with open(p) as fh:
                out[int(json.load(fh)["task_id"])] = os.path.join(root, d)
    return out


def gather(table: str, root: str, out_h5: str, png: str | None = None, x: str | None = None,
           y: str | None = None) -> dict:
    """Collect all tasks of a sweep into one HDF5 file (+ PNG).  Returns a small summary."""
    import h5py
    import numpy as np

    rows = read_table(table)
    dirs = task_dirs(root) if os.path.isdir(root) else {}
    n = len(rows)
    status = np.full(n, -1, dtype=np.int32)         # -1: never ran (or no exit_code written)
    results: list[dict] = [{} for _ in range(n)]
    for i, d in dirs.items():
        if i >= n:
            continue
        ec = os.path.join(d, "exit_code")
        if os.path.exists(ec):
            try:
                status[i] = int(open(ec).read().strip() or -1)
            except ValueError:
                status[i] = -1
        for dp, _, files in os.walk(d):
            for f in sorted(files):
                if f.endswith(".json") and f != "params.json":
                    try:
                        with open(os.path.join(dp, f)) as fh:
                            doc = json.load(fh)
                    except (OSError, ValueError):
                        continue
                    stem = os.path.relpath(os.path.join(dp, f), d)[:-5].replace(os.sep, "/")
                    results[i].update({f"{stem}/{k}" if k else stem: v for k, v in flatten_numbers(doc).items()})
    keys = sorted(set().union(*results)) if results else []
    cols = list(dict.fromkeys(k for r in rows for k in r))
    from ..io.hdf5 import stamp

    os.makedirs(os.path.dirname(os.path.abspath(out_h5)), exist_ok=True)
    with h5py.File(out_h5 + ".tmp", "w") as f:
        stamp(f, extra={"sweep_table": os.path.abspath(table), "sweep_root": os.path.abspath(root)})
        for c in cols:
            vals = [r.get(c) for r in rows]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                ds = f.create_dataset(f"params/{c}", data=np.array(vals, dtype=float))
            else:
                ds = f.create_dataset(f"params/{c}", data=np.array([str(v) for v in vals], dtype=h5py.string_dtype()))
            ds.attrs["description"] = f"sweep parameter {c} per task"
        for k in keys:
            ds = f.create_dataset(f"results/{k}", data=np.array([r.get(k, np.nan) for r in results], dtype=float))
            ds.attrs["description"] = f"{k} from each task's JSON output (NaN: missing)"
        ds = f.create_dataset("status", data=status)
        ds.attrs["description"] = "exit code per task (0 ok, 75 stopped early, -1 did not run)"
    os.replace(out_h5 + ".tmp", out_h5)
    summary = {"tasks": n, "ok": int(np.sum(status == 0)), "failed": int(np.sum(status != 0)),
               "results": len(keys), "h5": out_h5}
    if png:
        summary["png"] = summary_plot(rows, results, status, png, x, y)
    return summary


def _pick_y(keys: list[str], y: str | None) -> str | None:
    if y:
        m = [k for k in keys if k == y or k.endswith("/" + y) or k.endswith("." + y)]
        if not m:
            raise InputError(f"gather: no result named {y!r} (have: {', '.join(keys[:12])} ...)")
        return m[0]
    return keys[0] if keys else None


def summary_plot(rows, results, status, png: str, x: str | None, y: str | None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = sorted(set().union(*results))
    ykey = _pick_y(keys, y)
    fig, ax = plt.subplots(figsize=(6, 4))
    ok = status == 0
    if ykey is None:
        ax.text(0.5, 0.5, "no numeric results", ha="center")
    else:
        yv = np.array([r.get(ykey, np.nan) for r in results])
        if x:
            xv = np.array([float(r.get(x, np.nan)) for r in rows])
            ax.plot(xv[ok], yv[ok], "o", alpha=0.5, label="tasks")
            ux = np.unique(xv[ok & np.isfinite(yv)])
            if len(ux) < ok.sum():  # repeated x: mean ± std (ensembles)
                mean = np.array([np.nanmean(yv[ok & (xv == u)]) for u in ux])
                std = np.array([np.nanstd(yv[ok & (xv == u)], ddof=1) if np.sum(ok & (xv == u)) > 1 else 0 for u in ux])
                ax.errorbar(ux, mean, yerr=std, fmt="s-", capsize=3, label="mean ± std")
            ax.set_xlabel(x)
            ax.legend(fontsize=8)
        else:
            v = yv[ok & np.isfinite(yv)]
            ax.hist(v, bins=max(5, int(math.sqrt(len(v)))))
            if len(v):
                ax.axvline(v.mean(), color="k", label=f"mean {v.mean():.4g} ± {v.std(ddof=1) if len(v) > 1 else 0:.2g}")
                ax.legend(fontsize=8)
            ax.set_xlabel(ykey)
        ax.set_ylabel(ykey if x else "tasks")
    ax.set_title(f"sweep: {int(ok.sum())}/{len(rows)} tasks ok", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hpcmsm.bench.sweep", description="job-array sweep helpers")
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("count", help="print the number of rows")
    c.add_argument("table")
    r = sub.add_parser("row", help="render row INDEX into TASK_DIR (input.toml, params.json)")
    r.add_argument("table")
    r.add_argument("index", type=int)
    r.add_argument("--template", default=None)
    r.add_argument("--out", required=True, help="task directory")
    g = sub.add_parser("gather", help="collect all task directories under ROOT into one HDF5 + PNG")
    g.add_argument("table")
    g.add_argument("root")
    g.add_argument("--out", required=True, help="HDF5 file")
    g.add_argument("--png", default=None)
    g.add_argument("--x", default=None, help="parameter on the x axis (none: histogram)")
    g.add_argument("--y", default=None, help="result to plot (a key or its last component)")
    a = p.parse_args(argv)
    try:
        if a.what == "count":
            print(len(read_table(a.table)))
        elif a.what == "row":
            row = render_row(a.table, a.index, a.template, a.out)
            print(" ".join(f"{k}={v}" for k, v in row.items()))
        else:
            s = gather(a.table, a.root, a.out, a.png, a.x, a.y)
            print(json.dumps(s))
    except InputError as e:
        print(f"hpcmsm: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
