"""`python -m bench`: run the scenarios beside the limit server and write bench/results/.

python -m bench                      # everything, 5 s per load point
python -m bench --quick              # a smoke run of about a minute
python -m bench --scenarios hot,cold --duration 10
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import daw_popular

from . import procs, report, wrk
from .progress import Progress
from .scenarios import SCENARIOS, Context, Plan

RESULTS = Path(__file__).with_name("results")


def _scenario_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    return names


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark daw-popular beside the limit server (see bench/README.md).",
    )
    p.add_argument("--quick", action="store_true", help="short loads, fewer points (~1 min)")
    p.add_argument(
        "--scenarios",
        type=_scenario_list,
        default=list(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}",
    )
    p.add_argument("--duration", type=float, default=None, help="seconds per load point")
    p.add_argument("--results", type=Path, default=RESULTS, help="where results are written")
    return p


def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    binary = wrk.find()
    if binary is None:
        print(wrk.INSTALL_HINT, file=sys.stderr)
        return 2
    cores = procs.cores()
    if cores < 2:
        print(
            f"only {cores} core available: the servers and the load generator would share it, "
            "so the figures would mean little; run on a machine with 2 or more cores",
            file=sys.stderr,
        )
        return 2
    duration = args.duration or (2.0 if args.quick else 5.0)
    plan = Plan.quick(duration) if args.quick else Plan(duration=duration)
    progress = Progress()
    # The bench's own work (clients, bookkeeping) stays off the servers' core.
    os.sched_setaffinity(0, {procs.LOAD_CPU})
    stamp = time.strftime("%Y%m%dT%H%M%S")
    results: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "revision": _git_revision(),
            "python": platform.python_version(),
            # The service's request path compiled by mypyc (`make compile`), or its sources.
            "compiled": daw_popular.compiled(),
            "machine": platform.machine(),
            "cores": cores,
            "duration": duration,
            "quick": args.quick,
            "plan": {k: getattr(plan, k) for k in plan.__dataclass_fields__},
        },
        "scenarios": {},
    }
    failed = False
    with tempfile.TemporaryDirectory(prefix="daw-bench-") as tmp:
        ctx = Context(plan=plan, logs=Path(tmp), progress=progress, wrk_binary=binary)
        for name in args.scenarios:
            progress.step(f"{name}")
            try:
                results["scenarios"][name] = SCENARIOS[name](ctx)
            except (procs.ProcessError, wrk.WrkError, OSError) as exc:
                failed = True
                progress.step(f"  {name} failed: {exc}")
                results["scenarios"][name] = {"error": "".join(traceback.format_exception(exc))}
    results["meta"]["seconds"] = round(time.monotonic() - progress.started, 1)
    path = report.write_json(results, args.results, stamp)
    image = report.plot(results, args.results / "latest.png")
    if image is not None:
        (args.results / f"{stamp}.png").write_bytes(image.read_bytes())
    print(report.table(results))
    print(f"\nresults: {path}" + (f", plot: {image}" if image else ""))
    checks = [c for s in results["scenarios"].values() for c in s.get("checks", ())]
    return 1 if failed or not all(c["ok"] for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
