"""Results: the JSON files, the summary table on stdout, and the PNG plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import speed


def write_json(results: dict[str, Any], directory: Path, stamp: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, sort_keys=False) + "\n"
    path = directory / f"{stamp}.json"
    path.write_text(text)
    (directory / "latest.json").write_text(text)
    return path


def _fmt_point(name: str, point: dict[str, Any]) -> list[str]:
    ours, limit = point["service"], point.get("limit")
    row = [
        name,
        str(point["connections"]),
        f"{ours['rps']:,.0f}",
        f"{ours['p50_ms']:.3f}",
        f"{ours['p99_ms']:.3f}",
        f"{ours['errors']}/{ours['timeouts']}",
    ]
    if limit is not None:
        row += [
            f"{limit['rps']:,.0f}",
            f"{limit['p50_ms']:.3f}",
            f"{limit['p99_ms']:.3f}",
            f"{point['ratio']:.2f}x",
        ]
        if "p50_to_bound" in point:
            row[-1] += f", p50 {point['p50_to_bound']:.2f}x bound"
    else:
        row += ["", "", "", f"p50 {point['p50_to_bound']:.2f}x bound"]
    return row


def table(results: dict[str, Any]) -> str:
    """The summary: one row per load point, then every target with its verdict."""
    header = [
        "scenario",
        "c",
        "req/s",
        "p50 ms",
        "p99 ms",
        "err/t.o.",
        "limit req/s",
        "limit p50",
        "limit p99",
        "ratio",
    ]
    rows = [header]
    for name, scenario in results["scenarios"].items():
        for point in scenario.get("points", ()):
            rows.append(_fmt_point(name, point))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.append("")
    for scenario in results["scenarios"].values():
        for item in scenario.get("checks", ()):
            mark = "PASS" if item["ok"] else "FAIL"
            lines.append(f"{mark}  {item['name']}: {item['measured']} (target {item['target']})")
    for name, scenario in results["scenarios"].items():
        for point in scenario.get("points", ()):
            if "cpu_us_per_answer" in point:
                lines.append(
                    f"CPU   {name} c={point['connections']}: "
                    f"{point['cpu_us_per_answer']:.0f} us per answer "
                    f"(the cold limit {point['limit_cpu_us_per_answer']:.0f} us)"
                )
            if "upstream_rtt_during_service_ms" in point:
                lines.append(
                    f"RTT   {name} c={point['connections']}: the upstream answered in "
                    f"{point['upstream_rtt_during_service_ms']:.2f} ms during the service's "
                    f"load ({point['upstream_rtt_during_limit_ms']:.2f} ms during the cold "
                    f"limit's, {scenario['upstream_rtt_ms']:.2f} ms idle); the service "
                    f"timed its calls at {point['upstream_call_mean_ms']:.2f} ms"
                )
    lines += peers_lines(results)
    note = speed_note(results)
    if note:
        lines += ["", note]
    return "\n".join(lines)


def peers_lines(results: dict[str, Any]) -> list[str]:
    """The `peers` scenario: each server at each concurrency, and the service's
    throughput as a multiple of it."""
    scenario = results["scenarios"].get("peers")
    if not scenario or "runs" not in scenario:
        return []
    lines = ["", "PEERS  the hot answer's bytes from each server, alone on the servers' core"]
    for run in scenario["runs"]:
        c = run["connections"]
        for name, r in run["servers"].items():
            versus = "" if name == "service" else f"   service {run['service_to'][name]:.2f}x"
            lines.append(
                f"PEERS  c={c:<5} {name:<13} {r['rps']:>10,.0f} req/s  p50 {r['p50_ms']:.3f} ms"
                f"  p99 {r['p99_ms']:.3f} ms  err/t.o. {r['errors']}/{r['timeouts']}{versus}"
            )
    for name, why in scenario.get("missing", {}).items():
        lines.append(f"PEERS  {name} left out: {why}")
    return lines


# From this spread of the server core's probes (`bench/speed.py`), the summary warns.
SPREAD_NOTED = 0.25


def speed_note(results: dict[str, Any]) -> str:
    """A warning when the server core's speed moved during the run, by its probes."""
    probes = [
        ms
        for scenario in results["scenarios"].values()
        for point in scenario.get("points", ())
        for who in ("service", "limit")
        if who in point
        for ms in point[who].get("probe_ms") or ()
    ]
    if speed.spread(probes) < SPREAD_NOTED:
        return ""
    return (
        f"NOTE  the server core's speed moved during this run: a fixed piece of Python work"
        f" took {min(probes):.1f} to {max(probes):.1f} ms around the load points"
        " (bench/speed.py; each point's probe_ms). Absolute times are not comparable with"
        " a steadier run's, and a ratio is only as good as its two points' probes agree."
    )


def plot(results: dict[str, Any], path: Path) -> Path | None:
    """Throughput and latency against concurrency, service beside limit server."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    series = {
        name: scenario["points"]
        for name, scenario in results["scenarios"].items()
        if scenario.get("points") and "limit" in scenario["points"][0]
    }
    if not series:
        return None
    fig, (rps_ax, lat_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, points in series.items():
        cs = [p["connections"] for p in points]
        for who, style in (("service", "-o"), ("limit", "--s")):
            rps_ax.plot(cs, [p[who]["rps"] for p in points], style, label=f"{name} {who}")
            lat_ax.plot(cs, [p[who]["p50_ms"] for p in points], style, label=f"{name} {who} p50")
            lat_ax.plot(
                cs, [p[who]["p99_ms"] for p in points], style, alpha=0.5, label=f"{name} {who} p99"
            )
    rps_ax.set(xscale="log", xlabel="concurrent connections", ylabel="requests/s")
    rps_ax.set_title("throughput (one core)")
    lat_ax.set(xscale="log", yscale="log", xlabel="concurrent connections", ylabel="ms")
    lat_ax.set_title("latency")
    for ax in (rps_ax, lat_ax):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"daw-popular vs limit server, {results['meta']['started']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
