"""CPU time per process over a phase: on a 2-core machine the processes share, CPU is what a
slower path spends, so the split says where its time goes. It also says how much CPU processes
outside the benchmark took meanwhile: on a shared machine that is what makes figures unsteady."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

import psutil


def cpu_seconds(process: psutil.Process, children: bool = True) -> float:
    """User plus system CPU of a process and (unless told not to) its live children."""
    total = 0.0
    for proc in [process, *(process.children(recursive=True) if children else [])]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy, all cores together."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


@dataclass
class CpuSplit:
    per_item_ms: dict[str, float]  # by process name, and "others" for everything outside
    others_share: float  # of the machine's capacity over the phase, 0..1

    def __str__(self) -> str:
        ours = sum(ms for name, ms in self.per_item_ms.items() if name != "others")
        parts = ", ".join(f"{name} {ms:.1f}" for name, ms in self.per_item_ms.items())
        return f"{parts} ms (ours {ours:.1f} ms)"


class CpuMeter:
    """CPU spent by named processes between `start` and `split`; None names this process,
    counted without its children (they are the stack's processes, counted by their own names)."""

    def __init__(self, processes: Mapping[str, subprocess.Popen | None]) -> None:
        self.own_pid = psutil.Process().pid
        self.processes = {
            name: psutil.Process(p.pid if p is not None else self.own_pid)
            for name, p in processes.items()
        }
        self.before: dict[str, float] = {}
        self.machine_before = 0.0
        self.began = 0.0

    def start(self) -> CpuMeter:
        self.before = {name: self._seconds(p) for name, p in self.processes.items()}
        self.machine_before = machine_busy_seconds()
        self.began = time.monotonic()
        return self

    def _seconds(self, process: psutil.Process) -> float:
        return cpu_seconds(process, children=process.pid != self.own_pid)

    def split(self, count: int) -> CpuSplit:
        """Milliseconds of CPU per item, by process, since `start`."""
        spent = {name: self._seconds(p) - self.before[name] for name, p in self.processes.items()}
        others = max(0.0, machine_busy_seconds() - self.machine_before - sum(spent.values()))
        capacity = (time.monotonic() - self.began) * (psutil.cpu_count() or 1)
        per_item = {name: s * 1000 / count for name, s in {**spent, "others": others}.items()}
        return CpuSplit(per_item, others / capacity if capacity else 0.0)
