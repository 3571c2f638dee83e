"""Timing inside a measured process, and running each measurement in a child process of its own.

Peak memory: a child that execs inherits, in its rusage `ru_maxrss`, the high-water mark of the
process it was forked from (Linux saves the old address space's peak at exec, and Python spawns with
vfork). So every Python child reports its own `VmHWM` from /proc/self/status (which starts afresh at
exec), and the parent also samples the child's `VmHWM` while it runs (the only source for the
`mariadb` client). `ru_maxrss` is kept in the results as a cross-check.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.02


@dataclass
class Stopwatch:
    """Wall and CPU time of the timed part only: `with watch: ...`, possibly several times."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0
    _wall: float = 0.0
    _cpu: float = 0.0

    def __enter__(self) -> Stopwatch:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._wall
        self.cpu_seconds += time.process_time() - self._cpu


def status_kb(field_name: str, pid: int | str = "self") -> int | None:
    """A `kB` field of /proc/PID/status (VmHWM, VmRSS), or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(field_name.encode() + b":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a running process (e.g. the database server), from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ChildResult:
    argv: list[str]
    exit_code: int
    wall_seconds: float  # spawn to exit, as seen by the parent
    cpu_seconds: float  # user + system of the whole child, from wait4
    ru_maxrss_kb: int  # from wait4: may include the parent's own peak (see the module docstring)
    sampled_hwm_kb: int  # the child's VmHWM as last sampled while it ran
    report: dict[str, Any] = field(default_factory=dict)  # what a Python child wrote about itself

    @property
    def peak_rss_kb(self) -> int:
        return max(self.sampled_hwm_kb, int(self.report.get("hwm_kb", 0)))


def run_child(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    stdout: int | None = None,
    report: bool = False,
    timeout_seconds: float | None = None,
) -> ChildResult:
    """Run `argv` to completion, sampling its peak memory; with `report`, the child is given a file
    path as its last argument and writes a JSON object about itself there."""
    report_path = None
    if report:
        handle, name = tempfile.mkstemp(prefix="bench-report-", suffix=".json")
        os.close(handle)
        report_path = Path(name)
        argv = [*argv, str(report_path)]
    sampled = [0]
    done = threading.Event()
    began = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=stdout)

    def sample() -> None:  # in a thread, so that wait4 below returns the moment the child exits
        while not done.wait(POLL_SECONDS):
            hwm = status_kb("VmHWM", process.pid)
            if hwm:
                sampled[0] = max(sampled[0], hwm)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    timer = threading.Timer(timeout_seconds, process.kill) if timeout_seconds else None
    if timer:
        timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        process.kill()
        os.wait4(process.pid, 0)
        process.returncode = -9
        raise
    finally:
        done.set()
        if timer:
            timer.cancel()
    wall = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    result = ChildResult(
        argv=argv,
        exit_code=process.returncode,
        wall_seconds=wall,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        ru_maxrss_kb=usage.ru_maxrss,
        sampled_hwm_kb=sampled[0],
    )
    if report_path is not None:
        try:
            text = report_path.read_text()
            result.report = json.loads(text) if text else {}
        finally:
            report_path.unlink(missing_ok=True)
    return result


def write_report(path: str, data: dict[str, Any]) -> None:
    """Called by a Python child at its very end: adds its own VmHWM and VmRSS."""
    data = {**data, "hwm_kb": status_kb("VmHWM") or 0, "final_rss_kb": status_kb("VmRSS") or 0}
    Path(path).write_text(json.dumps(data, default=str))
