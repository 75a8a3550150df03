"""Results of a run: rows per scenario and server, ratios within the run, goals, table, chart."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BASELINES = ("picows", "picows-cork", "node-ws", "node-ws-cork", "bun")
SUBJECT = "tickhub"
_MEDIAN_KEYS = (
    "delivered_per_s",
    "msgs_per_cpu_s",
    "cpu_share",
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "bytes_per_msg",
    "loadgen_cpu_share",
    # scale-out
    "server_cpu_s",
    "window_s",
    "ingest_cpu_s",
    "gateways_cpu_s",
    "redis_cpu_s",
    "msgs_per_gateway_cpu_s",
    "ingest_us_per_published",
    "ticks_per_s",
    # burst
    "frames_per_s",
)


def key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["scenario"], row["clients"], row["symbols"], row["stalled"], row["load"],
        row.get("burst", 1),
    )  # fmt: skip


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (scenario, server): the median of repeated runs, in first-run order."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(*key(run), run["server"])].append(run)
    rows = []
    for group in groups.values():
        row = dict(group[0])
        if len(group) > 1:
            for k in _MEDIAN_KEYS:
                values = [g[k] for g in group if g.get(k) is not None]
                row[k] = statistics.median(values) if values else None
            row["repeats"] = len(group)
            row["p99_ms_runs"] = [g.get("p99_ms") for g in group]
            row["msgs_per_cpu_s_runs"] = [g.get("msgs_per_cpu_s") for g in group]
            each = [g["gateway_cpu_s"] for g in group if g.get("gateway_cpu_s")]
            if each and all(len(e) == len(each[0]) for e in each):
                row["gateway_cpu_s"] = [statistics.median(v) for v in zip(*each, strict=True)]
        rows.append(row)
    add_ratios(rows)
    return rows


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return float(a) / float(b)


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each row against each baseline of the same scenario in this run (a ``batch`` row against
    the baselines' unbatched ``clients`` row: they have no batching)."""
    by_key: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        by_key[key(row)][row["server"]] = row
    for row in rows:
        ratios: dict[str, dict[str, float | None]] = {}
        k = key({**row, "scenario": "clients"}) if row["scenario"] == "batch" else key(row)
        for base in BASELINES:
            other = by_key[k].get(base)
            if other is None:
                continue
            ratios[base] = {
                "msgs_per_cpu_s": _ratio(row.get("msgs_per_cpu_s"), other.get("msgs_per_cpu_s")),
                "p99": _ratio(row.get("p99_ms"), other.get("p99_ms")),
                "rss_per_conn": _ratio(row.get("rss_per_conn_kib"), other.get("rss_per_conn_kib")),
                "delivered_per_s": _ratio(row.get("delivered_per_s"), other.get("delivered_per_s")),
            }
        row["ratios"] = ratios


# --- goals ------------------------------------------------------------------------------------


def _find(rows: Iterable[dict[str, Any]], server: str, **match: Any) -> dict[str, Any] | None:
    for row in rows:
        if row["server"] == server and all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def _per_run(
    rows: list[dict[str, Any]], row: dict[str, Any] | None, base: str, runs_key: str
) -> str:
    """The ratio of each repeated run (run i against the baseline's run i): the noise."""
    other = _find(rows, base, **{k: (row or {}).get(k) for k in ("scenario", "clients")})
    mine, theirs = (row or {}).get(runs_key), (other or {}).get(runs_key)
    if not mine or not theirs:
        return ""
    each = [a / b for a, b in zip(mine, theirs, strict=False) if a and b]
    return "; runs " + ", ".join(f"{x:.2f}" for x in each)


def _verdict(value: float | None, ok: bool | None) -> str:
    if value is None or ok is None:
        return "n/a"
    return "PASS" if ok else "FAIL"


def goals(rows: list[dict[str, Any]], plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's measurable goals, evaluated on this run's rows (ratios only)."""
    out: list[dict[str, Any]] = []
    ref = plan["reference"]  # the headline scenario: 1,000 clients x 10 of 50 symbols
    t = _find(rows, SUBJECT, **ref)

    def add(goal: str, measured: str, value: float | None, ok: bool | None, note: str = "") -> None:
        out.append(
            {
                "goal": goal,
                "measured": measured,
                "value": value,
                "verdict": _verdict(value, ok),
                "note": note,
            }
        )

    for base, need in (("node-ws", 1.0), ("picows", 0.9)):
        r = (t or {}).get("ratios", {}).get(base, {}).get("msgs_per_cpu_s")
        add(
            f"1. msgs per CPU-s >= {need:g}x {base}",
            f"{r:.2f}x" if r is not None else "no baseline",
            r,
            None if r is None else r >= need,
            f"{ref['clients']} clients, {ref['subs']} of {ref['symbols']} symbols"
            + _per_run(rows, t, base, "msgs_per_cpu_s_runs"),
        )
    r = (t or {}).get("ratios", {}).get("picows", {}).get("p99")
    b = _find(rows, "picows", **ref)
    p50 = _ratio((t or {}).get("p50_ms"), (b or {}).get("p50_ms"))
    add(
        "2. p99 latency <= 1.2x picows",
        f"{r:.2f}x" if r is not None else "no baseline",
        r,
        None if r is None else r <= 1.2,
        f"at {ref['load']:,} deliveries/s; median of runs"
        + _per_run(rows, t, "picows", "p99_ms_runs")
        + (f"; p50 {p50:.2f}x" if p50 is not None else ""),
    )
    burst = _find(rows, SUBJECT, scenario="burst")
    if burst is not None:
        shape = (
            f"{burst['clients']:,} clients, {burst['subs']} of {burst['symbols']} symbols, "
            f"frames of {burst['burst']} ticks"
        )
        for base in ("bun", "node-ws-cork"):
            ratios = burst.get("ratios", {}).get(base, {})
            r, p99 = ratios.get("msgs_per_cpu_s"), ratios.get("p99")
            add(
                f"B. burst: msgs per CPU-s >= 1.0x {base}",
                f"{r:.2f}x" if r is not None else "no baseline",
                r,
                None if r is None else r >= 1.0,
                shape
                + (f"; p99 {p99:.2f}x" if p99 is not None else "")
                + _per_run(rows, burst, base, "msgs_per_cpu_s_runs"),
            )
        # The floor of a corked Python fan-out (no engines, no protocol beyond the messages).
        floor = burst.get("ratios", {}).get("picows-cork", {}).get("msgs_per_cpu_s")
        pw_cork = _find(rows, "picows-cork", scenario="burst")
        pw_vs = (pw_cork or {}).get("ratios", {})
        if floor is not None:
            out.append(
                {
                    "goal": "B. burst against the corked Python floor (picows-cork)",
                    "measured": f"tickhub {floor:.2f}x picows-cork",
                    "value": floor,
                    "verdict": "info",
                    "note": "picows-cork "
                    + ", ".join(
                        f"{pw_vs[b]['msgs_per_cpu_s']:.2f}x {b}"
                        for b in ("node-ws-cork", "bun")
                        if pw_vs.get(b, {}).get("msgs_per_cpu_s") is not None
                    ),
                }
            )
        # The same load in steady ticks (the reference row): what bursting costs or saves.
        d_tput = _ratio(burst.get("msgs_per_cpu_s"), (t or {}).get("msgs_per_cpu_s"))
        d_p99 = _ratio(burst.get("p99_ms"), (t or {}).get("p99_ms"))
        if d_tput is not None:
            out.append(
                {
                    "goal": "B. burst against steady ticks (tickhub)",
                    "measured": f"msgs/CPU-s {d_tput:.2f}x steady",
                    "value": d_tput,
                    "verdict": "info",
                    "note": f"p99 {d_p99:.2f}x steady" if d_p99 is not None else "",
                }
            )
    peak = _find(rows, SUBJECT, scenario="peak")
    if peak is not None:
        for base, need in (("bun", 1.0), ("node-ws", 5.0)):
            r = peak.get("ratios", {}).get(base, {}).get("delivered_per_s")
            add(
                f"P. peak deliveries per second >= {need:g}x {base}",
                f"{r:.2f}x" if r is not None else "no baseline",
                r,
                None if r is None else r >= need,
                f"{peak['clients']:,} clients, ticks as fast as the server can",
            )
    mem = [r for r in rows if r["scenario"] == "memory" and r["server"] == SUBJECT]
    if mem:
        big = max(mem, key=lambda r: r["clients"])
        r = big.get("ratios", {}).get("node-ws", {}).get("rss_per_conn")
        add(
            "3. RSS per connection <= 1.0x node-ws",
            f"{r:.2f}x" if r is not None else "no baseline",
            r,
            None if r is None else r <= 1.0,
            f"{big['clients']:,} idle connections",
        )
        answered = big.get("hb_acked") == big.get("hb_sent") and big.get("hb_sent")
        add(
            "3. heartbeats answered on every idle connection",
            f"{big.get('hb_acked')}/{big.get('hb_sent')}",
            big.get("hb_acked"),
            bool(answered),
        )
    for dim, label in (("clients", "clients"), ("symbols", "symbols")):
        spreads = {}
        for server in (SUBJECT, "picows"):
            series = sorted(
                (r for r in rows if r["server"] == server and r["scenario"] == dim),
                key=lambda r: r[dim],
            )
            values = [r["msgs_per_cpu_s"] for r in series if r.get("msgs_per_cpu_s")]
            if len(values) >= 2:
                spreads[server] = (max(abs(v / values[0] - 1) for v in values), series)
        if SUBJECT in spreads:
            spread, series = spreads[SUBJECT]
            base = f"; picows itself {spreads['picows'][0]:.0%}" if "picows" in spreads else ""
            add(
                f"4. msgs per CPU-s within 15% across {label}",
                f"{spread:.0%} from {series[0][dim]:,} to {series[-1][dim]:,}",
                spread,
                spread <= 0.15,
                "largest deviation from the smallest setting" + base,
            )
    batch = _find(rows, SUBJECT, scenario="batch")
    if batch is not None and t is not None:
        d_tput = _ratio(batch.get("msgs_per_cpu_s"), t.get("msgs_per_cpu_s"))
        d_p99 = _ratio(batch.get("p99_ms"), t.get("p99_ms"))
        vs_pw = batch.get("ratios", {}).get("picows", {}).get("msgs_per_cpu_s")
        out.append(
            {
                "goal": '5. opt-in batching (?batch / "batch": true)',
                "measured": f"msgs/CPU-s {d_tput:.2f}x unbatched" if d_tput else "n/a",
                "value": d_tput,
                "verdict": "info",
                "note": (f"{vs_pw:.2f}x picows; " if vs_pw else "")
                + (f"p99 {d_p99:.2f}x unbatched" if d_p99 else ""),
            }
        )
    base0 = _find(rows, SUBJECT, scenario="stall", stalled=0) or t
    for row in sorted(
        (r for r in rows if r["server"] == SUBJECT and r["scenario"] == "stall" and r["stalled"]),
        key=lambda r: r["stalled"],
    ):
        if base0 is None:
            break
        d_tput = _ratio(row.get("msgs_per_cpu_s"), base0.get("msgs_per_cpu_s"))
        d_p99 = _ratio(row.get("p99_ms"), base0.get("p99_ms"))
        pw0 = _find(rows, "picows", scenario="stall", stalled=0)
        pw = _find(rows, "picows", scenario="stall", stalled=row["stalled"])
        pw_tput = _ratio((pw or {}).get("msgs_per_cpu_s"), (pw0 or {}).get("msgs_per_cpu_s"))
        ok = None if d_tput is None or d_p99 is None else d_tput >= 0.95 and d_p99 <= 1.05
        add(
            f"6. {row['stalled']} stalled: msgs/CPU-s and p99 within 5% of none",
            f"msgs/CPU-s {d_tput:.2f}x, p99 {d_p99:.2f}x" if ok is not None else "n/a",
            d_tput,
            ok,
            f"RSS {row.get('rss_end_kib', 0) / 1024:.0f} MiB at the end; "
            f"{row.get('server_paused', '?')} paused"
            + (f"; picows msgs/CPU-s {pw_tput:.2f}x" if pw_tput is not None else ""),
        )
    return out


# --- table ------------------------------------------------------------------------------------


def _f(value: float | None, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, fmt)


COLUMNS = (
    ("scenario", "<", lambda r: _scenario(r)),
    ("server", "<", lambda r: r["server"]),
    ("clients", ">", lambda r: f"{r['clients']:,}"),
    ("sym", ">", lambda r: str(r["symbols"])),
    ("stall", ">", lambda r: str(r["stalled"])),
    ("load/s", ">", lambda r: _load(r)),
    ("deliv/s", ">", lambda r: _f(r.get("delivered_per_s"), ",.0f")),
    ("msgs/CPU-s", ">", lambda r: _f(r.get("msgs_per_cpu_s"), ",.0f")),
    ("CPU%", ">", lambda r: _f(r["cpu_share"] * 100 if r.get("cpu_share") else None, ".0f")),
    ("p50 ms", ">", lambda r: _f(r.get("p50_ms"), ".2f")),
    ("p99 ms", ">", lambda r: _f(r.get("p99_ms"), ".2f")),
    ("p99.9 ms", ">", lambda r: _f(r.get("p999_ms"), ".2f")),
    ("RSS/conn KiB", ">", lambda r: _f(r.get("rss_per_conn_kib"), ".1f")),
    ("tput/pw", ">", lambda r: _f(_rat(r, "picows", "msgs_per_cpu_s"), ".2f")),
    ("tput/node", ">", lambda r: _f(_rat(r, "node-ws", "msgs_per_cpu_s"), ".2f")),
    ("tput/cork", ">", lambda r: _f(_rat(r, "node-ws-cork", "msgs_per_cpu_s"), ".2f")),
    ("tput/bun", ">", lambda r: _f(_rat(r, "bun", "msgs_per_cpu_s"), ".2f")),
    ("p99/pw", ">", lambda r: _f(_rat(r, "picows", "p99"), ".2f")),
    ("p99/node", ">", lambda r: _f(_rat(r, "node-ws", "p99"), ".2f")),
    ("rss/node", ">", lambda r: _f(_rat(r, "node-ws", "rss_per_conn"), ".2f")),
    ("notes", "<", lambda r: "; ".join(r.get("notes", []))),
)


def _scenario(row: dict[str, Any]) -> str:
    burst = row.get("burst", 1)
    return f"{row['scenario']} K={burst}" if burst > 1 else row["scenario"]


def _load(row: dict[str, Any]) -> str:
    if row["scenario"] == "memory":
        return "idle"
    return "max" if row["load"] == "max" else f"{row['load'] / 1000:g}k"


def _rat(row: dict[str, Any], base: str, metric: str) -> float | None:
    value = row.get("ratios", {}).get(base, {}).get(metric)
    return None if value is None else float(value)


def render_table(rows: list[dict[str, Any]]) -> str:
    cells = [[fn(r) for _, _, fn in COLUMNS] for r in rows]
    heads = [name for name, _, _ in COLUMNS]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]
    aligns = [a for _, a, _ in COLUMNS]

    def line(values: list[str]) -> str:
        return "  ".join(f"{v:{a}{w}}" for v, a, w in zip(values, aligns, widths, strict=True))

    out = [line(heads), line(["-" * w for w in widths])]
    previous = None
    for row, c in zip(rows, cells, strict=True):
        group = (row["scenario"], row["clients"], row["symbols"], row["stalled"], row.get("burst"))
        if previous is not None and group != previous:
            out.append("")
        previous = group
        out.append(line(c).rstrip())
    return "\n".join(out)


def render_goals(items: list[dict[str, Any]]) -> str:
    width = max(len(g["goal"]) for g in items) if items else 0
    return "\n".join(
        f"  {g['verdict']:<4}  {g['goal']:<{width}}  {g['measured']}"
        + (f"  ({g['note']})" if g["note"] else "")
        for g in items
    )


# --- scale-out ------------------------------------------------------------------------------


def scaleout(rows: list[dict[str, Any]], kind: str = "scaleout") -> dict[str, Any] | None:
    """The scale-out rows (single process, ingest + K gateways) and the per-gateway cost model;
    ``kind="workers"``: the rows of ``serve --workers 1`` and ``2`` (no single-process row)."""
    mine = [r for r in rows if r["scenario"] == kind and not r.get("error")]
    ref = next((r for r in mine if r["server"] == SUBJECT), None)
    clusters = sorted((r for r in mine if r.get("gateways")), key=lambda r: r["gateways"])
    if ref is None and not clusters:
        return None
    out_rows = []
    for r in ([ref] if ref else []) + clusters:
        p99_added = None
        if ref is not None and r is not ref and r.get("p99_ms") is not None:
            p99_added = r["p99_ms"] - ref["p99_ms"]
        p50_added = None
        if ref is not None and r is not ref and r.get("p50_ms") is not None:
            p50_added = r["p50_ms"] - ref["p50_ms"]
        out_rows.append(
            {
                "setup": "single process (all, memory bus)" if r is ref else r["server"],
                "gateways": r.get("gateways") or 0,
                "clients_per_gateway": r.get("clients_per_gateway", [r["clients"]]),
                "delivered_per_s": r.get("delivered_per_s"),
                "delivered_per_gateway": r.get("delivered_per_gateway"),
                "window_s": r.get("window_s"),
                "server_cpu_s": r.get("server_cpu_s"),
                "ingest_cpu_s": r.get("ingest_cpu_s"),
                "gateway_cpu_s": r.get("gateway_cpu_s") or [],
                "redis_cpu_s": r.get("redis_cpu_s"),
                "msgs_per_cpu_s": r.get("msgs_per_cpu_s"),
                "msgs_per_gateway_cpu_s": r.get("msgs_per_gateway_cpu_s"),
                "ingest_us_per_published": r.get("ingest_us_per_published"),
                "ticks_per_s": r.get("ticks_per_s"),
                "p50_ms": r.get("p50_ms"),
                "p99_ms": r.get("p99_ms"),
                "p50_added_ms": p50_added,
                "p99_added_ms": p99_added,
                "repeats": r.get("repeats", 1),
                "notes": r.get("notes", []),
            }
        )
    model: dict[str, Any] = {}
    one = next((r for r in clusters if r["gateways"] == 1), None)
    two = next((r for r in clusters if r["gateways"] == 2), None)
    if one is not None and one.get("msgs_per_gateway_cpu_s"):
        model["msgs_per_gateway_cpu_s"] = one["msgs_per_gateway_cpu_s"]
        model["ingest_us_per_published"] = one.get("ingest_us_per_published")
        model["ticks_per_s"] = one.get("ticks_per_s")
    if two is not None and two.get("msgs_per_gateway_cpu_s"):
        model["msgs_per_gateway_cpu_s_2gw"] = two["msgs_per_gateway_cpu_s"]
    if one is not None and two is not None and one.get("window_s") and two.get("window_s"):
        # Same deliveries, one more gateway: the extra gateway CPU is what a gateway costs
        # whatever its share of the clients (its bus subscription, the ticks it decodes...).
        g1 = one["gateways_cpu_s"] / one["window_s"]
        g2 = two["gateways_cpu_s"] / two["window_s"]
        model["gateway_fixed_cores"] = g2 - g1
    return {"rows": out_rows, "model": model}


def render_scaleout(summary: dict[str, Any]) -> str:
    cols = (
        ("setup", "<", lambda r: r["setup"]),
        ("clients/gw", ">", lambda r: "+".join(str(n) for n in r["clients_per_gateway"])),
        ("deliv/s", ">", lambda r: _f(r["delivered_per_s"], ",.0f")),
        ("CPU-s total", ">", lambda r: _f(r["server_cpu_s"], ".2f")),
        ("ingest CPU-s", ">", lambda r: _f(r["ingest_cpu_s"], ".2f")),
        ("gateway CPU-s", ">", lambda r: " + ".join(f"{c:.2f}" for c in r["gateway_cpu_s"]) or "-"),
        ("redis CPU-s", ">", lambda r: _f(r["redis_cpu_s"], ".2f")),
        ("msgs/CPU-s", ">", lambda r: _f(r["msgs_per_cpu_s"], ",.0f")),
        ("msgs/gw-CPU-s", ">", lambda r: _f(r["msgs_per_gateway_cpu_s"], ",.0f")),
        ("ingest us/pub", ">", lambda r: _f(r["ingest_us_per_published"], ".0f")),
        ("p50 ms", ">", lambda r: _f(r["p50_ms"], ".2f")),
        ("p99 ms", ">", lambda r: _f(r["p99_ms"], ".2f")),
        ("p99 added ms", ">", lambda r: _f(r["p99_added_ms"], "+.2f")),
        ("notes", "<", lambda r: "; ".join(r["notes"])),
    )
    cells = [[fn(r) for _, _, fn in cols] for r in summary["rows"]]
    heads = [c[0] for c in cols]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]
    aligns = [c[1] for c in cols]

    def line(values: list[str]) -> str:
        return "  ".join(f"{v:{a}{w}}" for v, a, w in zip(values, aligns, widths, strict=True))

    out = [line(heads), line(["-" * w for w in widths])]
    out += [line(c).rstrip() for c in cells]
    window = next((r["window_s"] for r in summary["rows"] if r.get("window_s")), None)
    if window:
        out.append(f"  (CPU-s over a {window:.1f} s window; repeated set-ups show medians)")
    m = summary["model"]
    if m.get("msgs_per_gateway_cpu_s"):
        per = m["msgs_per_gateway_cpu_s"]
        ing = m.get("ingest_us_per_published")
        out.append(
            f"  K gateways, a core each: capacity ~ K x {per:,.0f} msgs/s "
            f"(msgs per gateway CPU-s, 1 gateway)"
            + (
                f"; with 2 gateways {m['msgs_per_gateway_cpu_s_2gw']:,.0f}"
                if m.get("msgs_per_gateway_cpu_s_2gw")
                else ""
            )
        )
        if ing:
            out.append(
                f"  fixed part: the ingest spends {ing:.0f} us per published message "
                f"(one core: ~{1e6 / ing:,.0f} published msgs/s, whatever K)"
            )
        if m.get("gateway_fixed_cores") is not None:
            out.append(
                f"  adding a gateway at the same deliveries cost {m['gateway_fixed_cores']:+.3f} "
                f"cores at {m.get('ticks_per_s') or 0:,.0f} ticks/s (its own bus share)"
            )
    return "\n".join(out)


# --- files ------------------------------------------------------------------------------------


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")


def chart(rows: list[dict[str, Any]], path_png: Path) -> Path:
    """Throughput and p99 against client count, one line per server: PNG, or SVG by hand."""
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["scenario"] == "clients":
            series[row["server"]].append(row)
    for rs in series.values():
        rs.sort(key=lambda r: r["clients"])
    panels = (
        ("msgs_per_cpu_s", "delivered msgs per server CPU-second"),
        ("delivered_per_s", "delivered msgs/s"),
        ("p99_ms", "p99 publish-to-client latency (ms)"),
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        path_svg = path_png.with_suffix(".svg")
        path_svg.write_text(_svg(series, panels))
        return path_svg
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4.5))
    for ax, (metric, title) in zip(axes, panels, strict=True):
        for server, rs in series.items():
            xs = [r["clients"] for r in rs if r.get(metric) is not None]
            ys = [r[metric] for r in rs if r.get(metric) is not None]
            ax.plot(xs, ys, marker="o", label=server)
        ax.set_xscale("log")
        if metric == "p99_ms":
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_xlabel("clients (10 of 50 symbols each)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
    if series:
        axes[0].legend()
    fig.tight_layout()
    fig.savefig(path_png, dpi=110)
    plt.close(fig)
    return path_png


def _svg(series: dict[str, list[dict[str, Any]]], panels: tuple[tuple[str, str], ...]) -> str:
    colors = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
    w, h, pad = 420, 300, 50
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * len(panels)}" height="{h}">']
    parts.append('<rect width="100%" height="100%" fill="white"/>')
    xs_all = sorted({r["clients"] for rs in series.values() for r in rs}) or [1]
    lx0, lx1 = math.log10(xs_all[0]), math.log10(xs_all[-1]) or 1
    for p, (metric, title) in enumerate(panels):
        ox = p * w
        ys_all = [r[metric] for rs in series.values() for r in rs if r.get(metric)] or [1]
        ymax = max(ys_all) * 1.1

        def px(x: float, ox: int = ox) -> float:
            span = (lx1 - lx0) or 1
            return ox + pad + (math.log10(x) - lx0) / span * (w - 2 * pad)

        def py(y: float, ymax: float = ymax) -> float:
            return h - pad - y / ymax * (h - 2 * pad)

        parts.append(
            f'<text x="{ox + w / 2}" y="20" font-size="12" text-anchor="middle">{title}</text>'
        )
        parts.append(
            f'<line x1="{ox + pad}" y1="{h - pad}" x2="{ox + w - pad}" y2="{h - pad}" '
            'stroke="black"/>'
        )
        parts.append(
            f'<line x1="{ox + pad}" y1="{pad}" x2="{ox + pad}" y2="{h - pad}" stroke="black"/>'
        )
        parts.append(f'<text x="{ox + 5}" y="{pad}" font-size="10">{ymax:,.3g}</text>')
        for x in xs_all:
            parts.append(
                f'<text x="{px(x)}" y="{h - pad + 15}" font-size="10" '
                f'text-anchor="middle">{x:,}</text>'
            )
        for i, (server, rs) in enumerate(series.items()):
            pts = " ".join(f"{px(r['clients'])},{py(r[metric])}" for r in rs if r.get(metric))
            color = colors[i % len(colors)]
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}"/>')
            if p == 0:
                parts.append(
                    f'<text x="{ox + pad + 10}" y="{pad + 15 * (i + 1)}" font-size="10" '
                    f'fill="{color}">{server}</text>'
                )
    parts.append("</svg>")
    return "\n".join(parts)
