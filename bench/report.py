"""The benchmark's table: medians over rounds, zkserver / Apache ratios, and the issue's targets."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from bench.ab import THROUGHPUT, Sample


@dataclass
class Row:
    name: str
    unit: str
    higher_is_better: bool
    target: str  # shown in the table
    check: Callable[[float, float, Sample, Sample], bool] | None


def _median(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def merge(samples: list[Sample]) -> Sample:
    """The median of every field over rounds."""
    extra_keys = {k for s in samples for k in s.extra}
    return Sample(
        value=statistics.median(s.value for s in samples),
        p50_us=_median([s.p50_us for s in samples]),
        p99_us=_median([s.p99_us for s in samples]),
        server_cores=_median([s.server_cores for s in samples]),
        server_us_per_op=_median([s.server_us_per_op for s in samples]),
        gen_cores=_median([s.gen_cores for s in samples]),
        other_cores=max((s.other_cores or 0.0 for s in samples), default=None),
        extra={k: _median([s.extra.get(k) for s in samples]) for k in extra_keys},
    )


def rows(fsync_p50_us: float, restart_labels: list[str]) -> list[Row]:
    out = [
        Row(name, "ops/s", True, ">=1.2x, p99<=",
            lambda a, z, sa, sz: z >= 1.2 * a and (sz.p99_us or 0) <= (sa.p99_us or 0))
        for name in THROUGHPUT
    ]
    out += [
        Row("oneWrite", "us p50", False, f"<={2 * fsync_p50_us:.0f}us",
            lambda a, z, sa, sz: z <= 2 * fsync_p50_us),
        Row("fanout", "us all", False, "<=0.8x", lambda a, z, sa, sz: z <= 0.8 * a),
        Row("connect", "sess/s", True, ">=1.2x", lambda a, z, sa, sz: z >= 1.2 * a),
    ]
    for label in restart_labels:
        unit = "s" if label.startswith("restart") else "MB"
        out.append(Row(label, unit, False, "<=1x", lambda a, z, sa, sz: z <= a))
    return out


def _cells(row: Row, sa: Sample | None, sz: Sample | None):
    """A row's values, ratio, target verdict and the load generator's and others' cores."""
    a, z = (sa.value if sa else None), (sz.value if sz else None)
    ratio = f"{z / a:.2f}x" if a and z is not None else "-"
    met = "-"
    if row.check is not None and sa is not None and sz is not None and a is not None and z is not None:
        met = "yes" if row.check(a, z, sa, sz) else "NO"
    elif row.name == "oneWrite" and sz is not None and row.check is not None:  # an absolute target
        met = "yes" if row.check(0, sz.value, sz, sz) else "NO"
    gen = max((s.gen_cores for s in (sa, sz) if s and s.gen_cores is not None), default=None)
    other = max((s.other_cores for s in (sa, sz) if s and s.other_cores is not None), default=None)
    return a, z, ratio, met, gen, other


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit in ("s",):
        return f"{v:.2f}"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def _lat(s: Sample) -> str:
    if s.p50_us is None:
        return "-"
    return f"{s.p50_us:.0f}/{s.p99_us:.0f}"


def _cpu(s: Sample) -> str:
    if s.server_cores is None:
        return "-"
    per_op = f" {s.server_us_per_op:.0f}us" if s.server_us_per_op is not None else ""
    return f"{s.server_cores:.2f}c{per_op}"


def table(merged: dict[str, dict[str, Sample]], fsync: dict, rounds: int) -> str:
    """merged: kind -> workload -> Sample (medians over rounds)."""
    ap, zk = merged.get("apache", {}), merged.get("zkserver", {})
    labels = sorted((k for k in zk if k.startswith(("restart", "rss"))), key=lambda k: (k[:3], _size(k)))
    lines = [
        f"medians of {rounds} round(s); ratio = zkserver / Apache; latencies p50/p99 in microseconds; "
        "CPU in cores (c) and server CPU per op",
        f"raw fsync floor (pwrite+fdatasync, data dir): p50 {fsync['p50_us']:.0f} us, p99 {fsync['p99_us']:.0f} us",
        "",
        f"{'workload':12} {'unit':7} {'apache':>10} {'zkserver':>10} {'ratio':>7}  {'target':>14} {'met':4}"
        f" {'apache p50/p99':>15} {'zk p50/p99':>13} {'apache cpu':>13} {'zk cpu':>12} {'gen':>5} {'other':>5}",
    ]
    for row in rows(fsync["p50_us"], labels):
        sa, sz = ap.get(row.name), zk.get(row.name)
        if sz is None and sa is None:
            continue
        a, z, ratio, met, gen, other = _cells(row, sa, sz)
        lines.append(
            f"{row.name:12} {row.unit:7} {_fmt(a, row.unit):>10} {_fmt(z, row.unit):>10} {ratio:>7}  "
            f"{row.target:>14} {met:4} {_lat(sa) if sa else '-':>15} {_lat(sz) if sz else '-':>13} "
            f"{_cpu(sa) if sa else '-':>13} {_cpu(sz) if sz else '-':>12} "
            f"{'-' if gen is None else f'{gen:.2f}':>5} {'-' if other is None else f'{other:.2f}':>5}")
    notes = _notes(ap, zk)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def _notes(ap: dict[str, Sample], zk: dict[str, Sample]) -> list[str]:
    out = []
    for kind, res in (("apache", ap), ("zkserver", zk)):
        c = res.get("connect")
        if c is not None:
            out.append(f"{kind}: connect storm RSS +{c.extra.get('rss_kb_per_session', float('nan')):.1f} KB/session, "
                       f"{c.extra.get('failed', 0):.0f} failed")
        f = res.get("fanout")
        if f is not None and f.extra.get("mean_notify_us") is not None:
            out.append(f"{kind}: fan-out mean per-watcher notification {f.extra['mean_notify_us']:.0f} us")
        for k, s in res.items():
            if k.startswith("rss") and "rss_live_mb" in s.extra:
                out.append(f"{kind}: {k} live before the restart {s.extra['rss_live_mb']:.0f} MB")
            if k.startswith("restart") and s.extra.get("populate_ops_per_s"):
                out.append(f"{kind}: {k} populate rate {s.extra['populate_ops_per_s']:,.0f} creates/s")
    return out


def _size(label: str) -> int:
    digits = "".join(ch for ch in label if ch.isdigit())
    return int(digits or 0) * (1_000_000 if label.endswith("M") else 1000)


# ---------------------------------------------------------------- the ensemble table


def ensemble_rows() -> list[Row]:
    """The issue's targets for three members beside three Apache members."""
    return [
        Row("getData", "ops/s", True, ">=1.5x", lambda a, z, sa, sz: z >= 1.5 * a),
        Row("setData", "ops/s", True, ">=2x", lambda a, z, sa, sz: z >= 2 * a),
        Row("create", "ops/s", True, ">=2x", lambda a, z, sa, sz: z >= 2 * a),
        Row("mixed", "ops/s", True, "-", None),
        Row("oneWriteFollower", "us p50", False, "<=1x", lambda a, z, sa, sz: z <= a),
        Row("oneWriteLeader", "us p50", False, "<=1x", lambda a, z, sa, sz: z <= a),
        Row("failover", "ms", False, "<=1x", lambda a, z, sa, sz: z <= a),
    ]


def _spread(samples: list[Sample] | None, unit: str) -> str:
    if not samples:
        return "-"
    values = [s.value for s in samples]
    return f"{_fmt(min(values), unit)}-{_fmt(max(values), unit)}"


def ensemble_table(samples: dict[str, dict[str, list[Sample]]], fsync: dict, rounds: int, cores: int) -> str:
    """samples: kind -> workload -> every sample (one per round; failover: one per kill)."""
    merged = {kind: {name: merge(xs) for name, xs in by.items()} for kind, by in samples.items()}
    ap, zk = merged.get("apache", {}), merged.get("zkserver", {})
    lines = [
        f"3-member ensembles; medians of {rounds} round(s) (failover: of every kill), range = min-max; "
        "ratio = zkserver / Apache;",
        "latencies p50/p99 in microseconds; CPU summed over the three members, in cores (c) and per op",
        f"raw fsync floor (pwrite+fdatasync, data dir): p50 {fsync['p50_us']:.0f} us, p99 {fsync['p99_us']:.0f} us",
        "",
        f"{'workload':16} {'unit':6} {'apache':>9} {'zkserver':>9} {'ratio':>6} {'target':>7} {'met':4}"
        f" {'apache range':>17} {'zk range':>17} {'apache p50/p99':>15} {'zk p50/p99':>13}"
        f" {'apache cpu':>12} {'zk cpu':>11} {'gen':>5} {'other':>5}",
    ]
    for row in ensemble_rows():
        sa, sz = ap.get(row.name), zk.get(row.name)
        if sa is None and sz is None:
            continue
        a, z, ratio, met, gen, other = _cells(row, sa, sz)
        lines.append(
            f"{row.name:16} {row.unit:6} {_fmt(a, row.unit):>9} {_fmt(z, row.unit):>9} {ratio:>6} {row.target:>7}"
            f" {met:4} {_spread(samples.get('apache', {}).get(row.name), row.unit):>17}"
            f" {_spread(samples.get('zkserver', {}).get(row.name), row.unit):>17}"
            f" {_lat(sa) if sa else '-':>15} {_lat(sz) if sz else '-':>13}"
            f" {_cpu(sa) if sa else '-':>12} {_cpu(sz) if sz else '-':>11}"
            f" {'-' if gen is None else f'{gen:.2f}':>5} {'-' if other is None else f'{other:.2f}':>5}")
    notes = _ensemble_notes(samples, merged, cores)
    return "\n".join([*lines, "", *notes] if notes else lines)


def _ensemble_notes(samples: dict[str, dict[str, list[Sample]]], merged: dict[str, dict[str, Sample]],
                    cores: int) -> list[str]:
    out = []
    for kind, res in merged.items():
        f = res.get("failover")
        if f is not None:
            out.append(f"{kind}: failover over {len(samples[kind]['failover'])} kill(s); the client's connection was"
                       f" cut {f.extra.get('dropped_ms', float('nan')):.0f} ms after the kill (median),"
                       f" {f.extra.get('attempts', 0):.0f} connection attempts")
        for name, s in res.items():
            if s.server_cores is None or name.startswith("oneWrite"):
                continue
            used = s.server_cores + (s.gen_cores or 0) + (s.other_cores or 0)
            if used >= 0.9 * cores:
                out.append(f"{kind}: {name}: the machine's {cores} cores were saturated (members {s.server_cores:.2f},"
                           f" load generator {s.gen_cores or 0:.2f}, other {s.other_cores or 0:.2f})")
            elif (s.gen_cores or 0) >= 0.8:
                out.append(f"{kind}: {name}: the load generator used {s.gen_cores:.2f} core: it may bound this row")
    return out
