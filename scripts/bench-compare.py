#!/usr/bin/env python3
"""Prints ours-versus-sockudo tables from scripts/bench.sh's results.jsonl (Markdown).

Each scenario run on both servers with the same arguments gives one row per figure: ours,
sockudo's, and the ratio ours / sockudo (below 1 is better for costs and latencies, above 1
for throughput). Runs of ours alone are not shown here.

Where the same arguments also ran against the load tool's bare WebSocket server ("bare",
`ws-floor`), a second table sets each server's CPU figure against the bare server's (shown
without sockudo too): bare / sockudo is the ratio to sockudo of a minimal server doing the same
socket work on this machine, an example of what is reachable, not a bound.
"""

import json
import sys


def per(a, b):
    return a / b if a is not None and b else None


def figures(r):
    """(name, value, unit, lower_is_better) for one run."""
    s = r.get("scenario")
    lat = r.get("latency") or {}
    if s == "connections":
        return [
            ("RSS per idle connection", (r.get("rss_per_connection_bytes") or 0) / 1024, "KiB", True),
            ("server CPU per connection (setup + hold)", per(r.get("server_cpu_us"), r.get("opened")), "µs", True),
            ("failed + dropped", (r.get("failed") or 0) + (r.get("dropped") or 0), "", True),
        ]
    if s == "fanout":
        return [
            ("server CPU per delivery", r.get("server_cpu_us_per_delivery"), "µs", True),
            ("deliveries per second", r.get("deliveries_per_sec"), "/s", False),
            ("delivery p50", per(lat.get("p50_us"), 1000), "ms", True),
            ("delivery p99", per(lat.get("p99_us"), 1000), "ms", True),
            ("not delivered", (r.get("expected") or 0) - (r.get("delivered") or 0), "", True),
        ]
    if s == "http":
        return [
            ("server CPU per request", r.get("server_cpu_us_per_request"), "µs", True),
            ("requests per second", r.get("requests_per_sec"), "/s", False),
            ("request p99", per(lat.get("p99_us"), 1000), "ms", True),
            ("errors", r.get("errors"), "", True),
        ]
    if s == "churn":
        return [
            ("server CPU per cycle", per(r.get("server_cpu_us"), r.get("cycles")), "µs", True),
            ("cycles", r.get("cycles"), "", False),
            ("failed", r.get("failed"), "", True),
        ]
    return []


def fmt(v, unit):
    if v is None:
        return "?"
    if isinstance(v, float) and v < 100:
        text = f"{v:.2f}"
    else:
        text = f"{v:,.0f}"
    return f"{text} {unit}".strip()


def main(path):
    runs = [json.loads(line) for line in open(path) if line.strip()]
    ours = {r["args"]: r for r in runs if r.get("server") == "ours" and "args" in r}
    theirs = {r["args"]: r for r in runs if r.get("server") == "sockudo" and "args" in r}
    both = [a for a in ours if a in theirs]
    if both:
        print("| scenario | figure | ours | sockudo | ours / sockudo |")
        print("|---|---|---|---|---|")
    else:
        print("(no scenario ran on both servers)")
    for args in both:
        mine = figures(ours[args])
        other = dict((name, value) for name, value, _, _ in figures(theirs[args]))
        for name, value, unit, _ in mine:
            ratio = per(value, other.get(name)) if isinstance(value, (int, float)) else None
            ratio_text = f"{ratio:.2f}x" if ratio is not None else "–"
            print(f"| `{args}` | {name} | {fmt(value, unit)} | {fmt(other.get(name), unit)} | {ratio_text} |")
    bare = {r["args"]: r for r in runs if r.get("server") == "bare" and "args" in r}
    floored = [a for a in ours if a in bare]
    if not floored:
        return
    print()
    print("| scenario | figure | bare server | ours | sockudo | bare / sockudo | ours / bare |")
    print("|---|---|---|---|---|---|---|")
    for args in floored:
        if "error" in bare[args]:
            print(f"| `{args}` | the bare server's run failed: {bare[args]['error']} | | | | | |")
            continue
        runs_of = (bare, ours, theirs)
        values = [dict((name, value) for name, value, _, _ in figures(run[args])) if args in run else {} for run in runs_of]
        for name, _, unit, _ in figures(bare[args]):
            if not name.startswith("server CPU"):
                continue
            floor, mine, other = (v.get(name) for v in values)
            cells = [fmt(v, unit) for v in (floor, mine, other)]
            ratios = [per(floor, other), per(mine, floor)]
            ratio_cells = [f"{r:.2f}x" if r is not None else "–" for r in ratios]
            print(f"| `{args}` | {name} | " + " | ".join(cells + ratio_cells) + " |")

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/bench/results.jsonl")
