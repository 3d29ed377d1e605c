"""Peak memory and CPU time of a worker and of the processes it started, from /proc.

``VmHWM`` is the peak resident set size the kernel recorded for a process over its
life, so a snapshot taken after a run shows the peak of the run. psutil is not a
dependency: /proc is enough on Linux (elsewhere the figures are simply absent).

CPU seconds per event (user + system, per role) are the figure the machine's noise
touches least: other jobs on the cores slow a worker down but do not make its work
bigger.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PROC = Path("/proc")
WORKER_RSS_LIMIT_MB = 600.0


def status_fields(pid: int, proc: Path = PROC) -> dict[str, str]:
    try:
        text = (proc / str(pid) / "status").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def kib_to_mb(value: str | None) -> float | None:
    """'102068 kB' -> 99.7 (MiB)."""
    if not value:
        return None
    number = value.split()[0]
    try:
        return round(int(number) / 1024.0, 1)
    except ValueError:
        return None


def children_of(pid: int, proc: Path = PROC) -> list[int]:
    """Direct children, from the PPid field of every process."""
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        if status_fields(int(entry.name), proc).get("PPid") == str(pid):
            found.append(int(entry.name))
    return sorted(found)


def _role(pid: int, proc: Path) -> str:
    try:
        cmdline = (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "unknown"
    if "resource_tracker" in cmdline:
        return "resource_tracker"
    if "spawn_main" in cmdline:
        return "pool"
    return "child"


def process_tree(pid: int | None, proc: Path = PROC) -> list[dict[str, Any]]:
    """The worker and its descendants: role, pid, peak and current RSS in MiB."""
    if pid is None or not proc.is_dir():
        return []
    rows: list[dict[str, Any]] = []
    pending: list[tuple[int, str]] = [(pid, "worker")]
    while pending:
        current, role = pending.pop(0)
        fields = status_fields(current, proc)
        if not fields:
            continue
        rows.append(
            {
                "role": role,
                "pid": current,
                "peak_rss_mb": kib_to_mb(fields.get("VmHWM")),
                "rss_mb": kib_to_mb(fields.get("VmRSS")),
            }
        )
        pending.extend((child, _role(child, proc)) for child in children_of(current, proc))
    return rows


def summarise(tree: list[dict[str, Any]]) -> dict[str, Any]:
    """Peak RSS of the worker process, the largest pool process, and all together."""

    def peak(role: str) -> float | None:
        values = [r["peak_rss_mb"] for r in tree if r["role"] == role and r["peak_rss_mb"]]
        return max(values) if values else None

    total = sum(r["peak_rss_mb"] or 0.0 for r in tree)
    return {
        "worker_peak_rss_mb": peak("worker"),
        "pool_peak_rss_mb": peak("pool"),
        "pool_processes": sum(1 for r in tree if r["role"] == "pool"),
        "all_processes_peak_rss_mb": round(total, 1) if tree else None,
    }


def cpu_seconds(pid: int, proc: Path = PROC) -> float | None:
    """User + system CPU time a process has used so far."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which may itself contain spaces and parentheses.
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / float(os.sysconf("SC_CLK_TCK"))


def cpu_by_role(pids: Iterable[int | None], proc: Path = PROC) -> dict[int, tuple[str, float]]:
    """pid -> (role, CPU seconds) for these workers and all their descendants."""
    found: dict[int, tuple[str, float]] = {}
    for pid in pids:
        for row in process_tree(pid, proc):
            seconds = cpu_seconds(row["pid"], proc)
            if seconds is not None:
                found[row["pid"]] = (row["role"], seconds)
    return found


def cpu_spent(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds by role between two ``cpu_by_role`` readings (a process that started
    in between counts from zero)."""
    spent: dict[str, float] = {}
    for pid, (role, seconds) in after.items():
        start = before.get(pid, (role, 0.0))[1]
        spent[role] = spent.get(role, 0.0) + max(0.0, seconds - start)
    return spent


def cpu_per_event(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], events: int
) -> dict[str, float]:
    """Microseconds of CPU per event, by role (worker = the worker's main process, pool = all
    analyzer processes together)."""
    if events <= 0:
        return {}
    spent = cpu_spent(before, after)
    return {f"{role}_cpu_us_per_event": round(s * 1e6 / events, 1) for role, s in spent.items()}


# /proc/stat's first line: the machine's CPU time, all CPUs together, in clock ticks.
_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def machine_cpu_ticks(proc: Path = PROC) -> dict[str, int]:
    """The whole machine's CPU time so far by kind (empty where /proc is absent)."""
    try:
        first = (proc / "stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return {}
    return dict(zip(_STAT_FIELDS, map(int, first[1:9]), strict=False))


def machine_cpu_share(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    """How the machine's CPUs spent the time between two readings: busy (any process,
    the kernel, interrupts), and stolen by the hypervisor for other tenants. A ratio
    of two rates is only about the code when the machine had the CPU to give both."""
    delta = {k: after[k] - before.get(k, 0) for k in after}
    total = sum(delta.values())
    if not before or total <= 0:
        return {}
    busy = sum(delta.get(k, 0) for k in ("user", "nice", "system", "irq", "softirq"))
    return {
        "machine_busy_share": round(busy / total, 3),
        "machine_steal_share": round(delta.get("steal", 0) / total, 3),
    }


def machine_row(run: dict[str, Any]) -> str:
    """A run's machine CPU shares for the table: "busy % / stolen %" ("n/a" without /proc)."""
    if "machine_busy_share" not in run:
        return "n/a"
    return f"{run['machine_busy_share']:.0%} / {run['machine_steal_share']:.0%}"
