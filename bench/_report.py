"""The throughput benchmark's report: its tables, the ratios of ours to every other system and
the verdict against the goal's targets, and the common paced rates those tables compare at.
"""

from __future__ import annotations

import math

from _figures import SEGMENTS, SIDES, Summary
from peers import PEERS

TARGET_VS_RAW = 1.0
TARGET_VS_PEERS = 1.2
TARGET_P99_MS = 20.0
# The goal compares ours with these peers at their defaults; the reliable variants are shown
# beside them for what their guarantees cost.
GOAL_PEERS = ("dramatiq", "taskiq", "celery", "faststream")

LABELS = {
    "raw": "raw aio-pika",
    "raw-stream": "raw aio-pika + rstream",
    "sdk": "ours (JobQueue+ProviderWorker)",
    "sdk-amqp": "ours, results over AMQP",
    **{name: peer.label for name, peer in PEERS.items()},
}
OURS = ("sdk", "sdk-amqp")
PACED_RATE_NAMES = ("slowest-half", "ours-half")


def common_rates(specs: list[str], summaries: dict[str, Summary]) -> list[float]:
    """The ``--paced-rates`` in jobs/s, once the peaks they may name are measured:
    ``slowest-half`` is the lowest half peak of the run's systems, ``ours-half`` half of
    ours' (the SDK at its defaults; else ours over AMQP) peak. Duplicates are dropped."""
    rates: list[float] = []
    for spec in specs:
        if spec == "slowest-half":
            rate = min(s.throughput for s in summaries.values()) / 2
        elif spec == "ours-half":
            ours = next(o for o in OURS if o in summaries)
            rate = summaries[ours].throughput / 2
        else:
            rate = float(spec)
        rate = round(rate, 1)
        if rate not in rates:
            rates.append(rate)
    return rates


def table(columns: list[str], rows: dict[str, list[str]]) -> list[str]:
    """A Markdown table with one row per system (its label first, then ``columns``), numbers
    right-aligned, as docs/performance.md records them."""
    return [
        "| system | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
        *(f"| {LABELS[system]} | " + " | ".join(cells) + " |" for system, cells in rows.items()),
    ]


def report(
    summaries: dict[str, Summary], concurrency: list[int], header: dict[str, str]
) -> list[str]:
    """The table, the ratios and the verdict against the goal's targets, as text lines;
    ``concurrency`` is the run's client loads (jobs in flight)."""
    lines = [f"{key}: {value}" for key, value in header.items()]
    lines.append("")
    peak_and_half: dict[str, list[str]] = {}
    for system, s in summaries.items():
        d = s.as_dict()
        peak_and_half[system] = [
            f"{d['peak_jobs_per_s']:.0f} ({s.spread(s.peak_runs, lambda r: r.throughput)})",
            f"{d['peak_in_flight']}",
            f"{d['peak_p50_ms']:.1f}",
            f"{d['peak_p99_ms']:.1f}",
            f"{d['half_rate']:.0f}",
            f"{d['half_p50_ms']:.1f}",
            f"{d['half_p99_ms']:.1f}",
        ]
    lines += table(
        [
            "peak jobs/s (median; rounds min-max)",
            "in flight @peak",
            "p50 ms @peak",
            "p99 ms @peak",
            "half-peak rate jobs/s",
            "p50 ms @half",
            "p99 ms @half",
        ],
        peak_and_half,
    )
    rates = sorted({rate for s in summaries.values() for rate in s.paced})
    if rates:
        rate_columns = [f"{rate:.0f} jobs/s" for rate in rates]
        latencies: dict[str, list[str]] = {}
        cpu: dict[str, list[str]] = {}
        for system, s in summaries.items():
            latencies[system] = []
            cpu[system] = []
            for rate in rates:
                d = s.as_dict()["paced"].get(str(rate))
                runs = s.paced.get(rate, [])
                latencies[system].append(
                    f"{d['p50_ms']:.1f} / {d['p99_ms']:.1f} "
                    f"({s.spread(runs, lambda r: r.p99_ms, 1)})"
                    if d
                    else "-"
                )
                sides = [s.paced_cpu_ms_per_job(rate, side) for side in SIDES]
                known = [v for v in sides if not math.isnan(v)]
                cpu[system].append(
                    " / ".join(f"{v:.2f}" for v in known) + f" = {sum(known):.2f}" if known else "-"
                )
        lines += ["", "p50 / p99 ms at common paced rates (median of rounds; rounds' p99 min-max):"]
        lines += ["", *table(rate_columns, latencies), ""]
        lines.append(
            "CPU per job at the common paced rates (ms, median of rounds; "
            "client / worker / broker [/ redis] = total):"
        )
        lines += ["", *table(rate_columns, cpu)]
    lines += ["", "Throughput by client load (jobs/s, median of rounds):", ""]
    lines += table(
        [f"{n} in flight" for n in concurrency],
        {
            system: [f"{s.throughput_at(n):.0f}" for n in concurrency]
            for system, s in summaries.items()
        },
    )
    lines.append("")
    lines.append(
        "CPU per job at peak (ms, median of rounds; broker: minus its idle rate before the round):"
    )
    lines.append("")
    cpu_at_peak: dict[str, list[str]] = {}
    for system, s in summaries.items():
        sides = [s.cpu_ms_per_job(side) for side in SIDES]
        cpu_at_peak[system] = [
            *("-" if math.isnan(v) else f"{v:.2f}" for v in sides),
            f"{sum(v for v in sides if not math.isnan(v)):.2f}",
            f"{s.broker_io_per_job('syscalls'):.1f}",
            f"{s.broker_io_per_job('disk_bytes') / 1024:.2f}",
        ]
    lines += table(
        [
            "client",
            "worker",
            "broker",
            "redis",
            "total",
            "broker read+write syscalls/job",
            "broker disk KiB/job",
        ],
        cpu_at_peak,
    )
    lines.append("")
    lines.append(
        "TCP segments with data per job at peak, between the broker (AMQP and stream ports) "
        "and each side (median of rounds; in brackets: of those, on the stream port):"
    )
    lines.append("")
    segments: dict[str, list[str]] = {}
    for system, s in summaries.items():
        segs = [s.broker_io_per_job(key) for key in SEGMENTS]
        stream = [s.broker_io_per_job(f"stream_{key}") for key in SEGMENTS]
        segments[system] = [
            *(
                f"{v:.2f}" + (f" ({w:.2f})" if w > 0 else "")
                for v, w in zip(segs, stream, strict=True)
            ),
            f"{segs[0] + segs[2]:.2f}",
        ]
    lines += table(
        [
            "client -> broker",
            "broker -> client",
            "worker -> broker",
            "broker -> worker",
            "into the broker",
        ],
        segments,
    )
    lines.append("")
    lines.extend(verdicts(summaries))
    return lines


def verdicts(summaries: dict[str, Summary]) -> list[str]:
    """Ours (each results protocol in the run) against every other system, then the goal."""
    lines: list[str] = []
    for ours in (o for o in OURS if o in summaries):
        prefix = "ours" if ours == "sdk" else "ours (amqp)"
        lines.extend(
            f"{prefix}/{other} throughput = {summaries[ours].throughput / s.throughput:.2f}x"
            for other, s in summaries.items()
            if other != ours
        )
        for name, met, text in goal(summaries, ours):
            lines.append(f"{name}: {text} ({'met' if met else 'MISSED'})")
    return lines


def goal(summaries: dict[str, Summary], ours: str = "sdk") -> list[tuple[str, bool, str]]:
    """The targets that the systems in this run can judge: (target, met, figures)."""
    sdk = summaries[ours]
    name = "ours" if ours == "sdk" else "ours (amqp)"
    targets: list[tuple[str, bool, str]] = []
    if "raw" in summaries:
        ratio = sdk.throughput / summaries["raw"].throughput
        targets.append(
            (
                f"{name} vs raw aio-pika",
                ratio >= TARGET_VS_RAW,
                f"{ratio:.2f}x, >= {TARGET_VS_RAW}x",
            )
        )
    peers = [p for p in GOAL_PEERS if p in summaries]
    if peers:
        fastest = max(peers, key=lambda p: summaries[p].throughput)
        ratio = sdk.throughput / summaries[fastest].throughput
        targets.append(
            (
                f"{name} vs the fastest peer at its defaults",
                ratio >= TARGET_VS_PEERS,
                f"{ratio:.2f}x {LABELS[fastest]}, >= {TARGET_VS_PEERS}x",
            )
        )
    p99 = sdk.as_dict()["half_p99_ms"]
    targets.append(
        (f"{name} p99 at half peak", p99 < TARGET_P99_MS, f"{p99:.1f} ms, < {TARGET_P99_MS:.0f} ms")
    )
    return targets
