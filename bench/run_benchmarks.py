"""Reverse ETL throughput and memory benchmark: our sync against the practical limits and the peers.

    /tmp/venv/bin/python bench/run_benchmarks.py [--rows 1000000 5000000] [--quick]

Creates its data in MariaDB/MySQL (database `reverse_etl_bench`), starts a local Customer.io-compatible
server with 20 ms of latency per request, runs every measurement in a child process of its own (so
peak RSS is per measurement) and prints rows/s, peak RSS and ratios. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import dataset
from measure import ChildResult, process_cpu_seconds, run_child

BENCH_DIR = Path(__file__).resolve().parent
WORKER = BENCH_DIR / "worker.py"
SERVER = BENCH_DIR / "fake_cio_server.py"
PEERS_VENV = BENCH_DIR / ".venv-peers"
# dlt 1.31's `sql_database` extra no longer brings SQLAlchemy; its pyarrow backend needs pyarrow.
PEER_REQUIREMENTS = [
    "customerio-cdp-analytics",
    "dlt[sql_database]",
    "sqlalchemy",
    "pyarrow",
    "pymysql",
    "cryptography",
]
PEER_IMPORTS = "import customerio.analytics, dlt, dlt.sources.sql_database, pymysql, pyarrow, sqlalchemy"
API_KEY = "bench-api-key"
API_KEY_ENV = "REVERSE_ETL_BENCH_CIO_API_KEY"
PASSWORD_ENV = "REVERSE_ETL_BENCH_MYSQL_PASSWORD"

LABELS = {
    "1": "(1) mariadb CLI --quick > /dev/null",
    "2": "(2) PyMySQL SSCursor, tuples",
    "3": "(3) ours: extraction, pymysql",
    "3m": "(3m) ours: extraction, mysqlclient",
    "3x": "(3x) ours: extraction, connectorx",
    "4": "(4) ours: mapping + serialization",
    "5": "(5) ours: end-to-end identify sync",
    "5m": "(5m) ours: end-to-end, mysqlclient",
    "5f": "(5f) ours: end-to-end, fast path",
    "6": "(6) customerio-cdp-analytics",
    "6n": "(6n) same, return value ignored",
    "7": "(7) dlt sql_table, pyarrow",
}
ALL = ["1", "2", "3", "3m", "3x", "4", "5", "6", "6n", "7"]
FAST_PATH = ["5m", "5f"]  # --fast-path: end to end with each fast driver; (5f) is connectorx


@dataclass
class Measurement:
    key: str
    dataset_rows: int
    rows: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    db_cpu_seconds: float | None = None
    peak_rss_kb: int = 0
    ok: bool = True
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.db = {
            "host": args.mysql_host,
            "port": args.mysql_port,
            "user": args.mysql_user,
            "database": dataset.DATABASE,
        }
        self.password = os.environ.get(PASSWORD_ENV, "")
        if self.password:
            self.db["password_env"] = PASSWORD_ENV
        self.db_server_pid = _find_pid(("mariadbd", "mysqld"))
        self.results: list[Measurement] = []
        self.notes: list[str] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="reverse-etl-bench-"))
        self.server: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.peers_python = sys.executable
        self.ours_commit_id = ""

    # --- the fake Customer.io server -------------------------------------------------------------
    def start_server(self) -> None:
        argv = [sys.executable, str(SERVER), "--api-key", API_KEY, "--latency-ms", str(self.args.latency_ms)]
        if self.args.verify:
            argv.append("--verify")
        self.server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        line = self.server.stdout.readline() if self.server.stdout else ""
        if not line.startswith("PORT "):
            raise SystemExit("the fake Customer.io server did not start")
        self.base_url = f"http://127.0.0.1:{int(line.split()[1])}/v1"
        say(f"fake Customer.io server at {self.base_url} (pid {self.server.pid})")

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=10)

    def server_stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.base_url.removesuffix("/v1") + "/_stats", timeout=10) as answer:
            return json.loads(answer.read())

    def reset_server(self) -> None:
        if self.server is None:
            return
        request = urllib.request.Request(
            self.base_url.removesuffix("/v1") + "/_reset", data=b"", method="POST"
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    def check_server_capacity(self) -> None:
        """The server must not be the bottleneck: compare its throughput with the latency's bound."""
        latency = self.args.latency_ms / 1000
        for connections, each in ((1, 20), (8, 25)):
            self.reset_server()
            child = self.worker(
                "server_capacity",
                {
                    "base_url": self.base_url,
                    "api_key": API_KEY,
                    "connections": connections,
                    "requests_each": each,
                },
            )
            report = child.report
            stats = self.server_stats()
            rate = report["requests"] / report["seconds"]
            bound = connections / latency if latency else float("inf")
            ok = report["failures"] == 0 and stats["calls"] == report["rows"]
            self.notes.append(
                f"fake server check: {report['requests']} requests of {report['body_bytes'] / 1024:.0f} KB "
                f"over {connections} kept-alive connection(s): {rate:.0f} requests/s "
                f"({rate * report['body_bytes'] / 1e6:.0f} MB/s), {rate / bound:.0%} of the "
                f"{bound:.0f}/s that {self.args.latency_ms:g} ms latency allows; server handling "
                f"{1000 * stats['handling_seconds'] / max(stats['requests'], 1):.2f} ms/request besides "
                f"the latency; {stats['max_in_flight']} in flight at most"
                + ("" if ok else f"; FAILED: {report['failures']} errors, {stats['calls']} calls counted")
            )
            say(self.notes[-1])
        self.reset_server()

    # --- children ----------------------------------------------------------------------------------
    def worker(self, stage: str, args: dict[str, Any], python: str | None = None) -> ChildResult:
        env = {**os.environ, API_KEY_ENV: API_KEY, "RUNTIME__DLTHUB_TELEMETRY": "false"}
        if self.args.ours_path:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.args.ours_path, env.get("PYTHONPATH")]))
        child = run_child(
            [python or sys.executable, str(WORKER), stage, json.dumps(args)], env=env, report=True
        )
        if child.exit_code != 0 or not child.report:
            raise RuntimeError(f"{stage} failed (exit code {child.exit_code})")
        return child

    def measure(self, key: str, rows: int, run: Any) -> Measurement | None:
        if key not in self.args.only:
            return None
        say(f"{LABELS[key]} on {rows:,} rows ...")
        runs = []
        for attempt in range(self.args.repeat):
            measurement = Measurement(key, rows)
            db_cpu_before = process_cpu_seconds(self.db_server_pid) if self.db_server_pid else None
            try:
                run(measurement)
            except Exception as error:  # report and go on with the other measurements
                measurement.ok = False
                measurement.note = str(error)
                say(f"  FAILED: {error}")
            if db_cpu_before is not None:
                after = process_cpu_seconds(self.db_server_pid)
                measurement.db_cpu_seconds = after - db_cpu_before if after is not None else None
            if not measurement.ok:
                break
            runs.append(measurement)
            if self.args.repeat > 1:
                say(f"  run {attempt + 1}: {measurement.rows_per_second:,.0f} rows/s")
        if runs:  # best of the runs: other processes on the machine only ever slow a run down
            best = max(runs, key=lambda m: m.rows_per_second)
            best.details["rows_per_second_of_each_run"] = [round(m.rows_per_second) for m in runs]
            measurement = best
        if measurement.ok:
            say(
                f"  {measurement.rows:,} rows in {measurement.seconds:.2f} s = "
                f"{measurement.rows_per_second:,.0f} rows/s, peak RSS {measurement.peak_rss_kb / 1024:.0f} MB"
                + (f" ({measurement.note})" if measurement.note else "")
            )
        self.results.append(measurement)
        return measurement

    def _from_child(self, measurement: Measurement, child: ChildResult) -> dict[str, Any]:
        report = child.report
        measurement.rows = int(report["rows"])
        measurement.seconds = float(report["seconds"])
        measurement.cpu_seconds = float(report["cpu_seconds"])
        # Our sync reads the query in a process of its own: both processes' peaks count.
        measurement.peak_rss_kb = child.peak_rss_kb + int(report.get("reader_peak_rss_kb") or 0)
        measurement.details = {
            **report,
            "process_wall_seconds": child.wall_seconds,
            "process_cpu_seconds": child.cpu_seconds,
            "ru_maxrss_kb": child.ru_maxrss_kb,
        }
        return report

    def _check_delivered(self, measurement: Measurement, expected: int) -> dict[str, Any]:
        stats = self.server_stats()
        measurement.details["server"] = stats
        if stats["calls"] != expected or stats["unauthorized"] or stats["invalid"]:
            raise RuntimeError(
                f"the server counted {stats['calls']:,} calls for {expected:,} rows "
                f"({stats['unauthorized']} unauthorized, {stats['invalid']} invalid)"
            )
        if self.args.verify and stats["distinct_user_ids"] != expected:
            raise RuntimeError(f"{stats['distinct_user_ids']:,} distinct userIds for {expected:,} rows")
        return stats

    # --- the measurements --------------------------------------------------------------------------
    def cli_argv(self, sql: str) -> list[str]:
        client = shutil.which("mariadb") or shutil.which("mysql")
        if client is None:
            raise RuntimeError("no mariadb/mysql command-line client on PATH")
        argv = [client, "--quick", "--batch", f"--host={self.db['host']}", f"--port={self.db['port']}"]
        argv += [f"--user={self.db['user']}", f"--database={self.db['database']}", "-e", sql]
        if self.password:
            argv.insert(1, f"--password={self.password}")
        return argv

    def run_size(self, rows: int) -> None:
        data = dataset.ensure(
            rows, self.db["host"], self.db["port"], self.db["user"], self.password, self.args.regenerate
        )
        sql = data.query
        with open(os.devnull, "wb") as devnull:  # warm the caches: the first scan reads from disk
            run_child(self.cli_argv(sql), stdout=devnull.fileno())

        def cli(m: Measurement) -> None:
            with open(os.devnull, "wb") as devnull:
                child = run_child(self.cli_argv(sql), stdout=devnull.fileno())
            if child.exit_code != 0:
                raise RuntimeError(f"the client exited with {child.exit_code}")
            m.rows, m.seconds, m.cpu_seconds = rows, child.wall_seconds, child.cpu_seconds
            m.peak_rss_kb = child.sampled_hwm_kb or child.ru_maxrss_kb
            m.details = {"ru_maxrss_kb": child.ru_maxrss_kb, "sampled_hwm_kb": child.sampled_hwm_kb}
            m.note = "wall time of the whole process"

        def pymysql(m: Measurement) -> None:
            self._from_child(m, self.worker("pymysql", {"db": self.db, "sql": sql}))

        def extract(m: Measurement, driver: str = "pymysql") -> None:
            self._from_child(m, self.worker("ours_extract", {"db": self.db, "sql": sql, "driver": driver}))

        def mapping(m: Measurement) -> None:
            preload = self.args.map_mode == "preload"
            report = self._from_child(
                m, self.worker("ours_map", {"db": self.db, "sql": sql, "preload": preload})
            )
            if report["calls"] + report["rejected"] != rows or report["rejected"]:
                raise RuntimeError(f"{report['calls']:,} calls and {report['rejected']:,} rejected rows")
            m.note = f"packing into /batch bodies: {report['pack_seconds']:.2f} s more; " + (
                f"{report['rss_before_kb'] / 1024:.0f} MB held before mapping" if preload else "streamed"
            )

        def end_to_end(m: Measurement, stage: str = "ours_end_to_end", driver: str | None = None) -> None:
            self.reset_server()
            server_cpu_before = self.server_stats()["cpu_seconds"]
            args = {
                "db": self.db,
                "query_template": data.query_template,
                "base_url": self.base_url,
                "api_key_env": API_KEY_ENV,
                "workdir": str(self.workdir),
                **({"driver": driver} if driver else {}),
            }
            report = self._from_child(m, self.worker(stage, args))
            stats = self._check_delivered(m, rows)
            if report["calls"] != rows or report["rejected"]:
                raise RuntimeError(f"{report['calls']:,} calls sent, {report['rejected']:,} rejected")
            waited = self.args.latency_ms * stats["requests"] / 1000
            average_kb = stats["bytes"] / max(stats["requests"], 1) / 1024
            m.note = (
                f"{stats['requests']:,} requests of {average_kb:.0f} KB, "
                f"{stats['max_in_flight']} in flight at most, requests x latency = {waited:.1f} s; "
                f"server CPU {stats['cpu_seconds'] - server_cpu_before:.1f} s"
            )

        def customerio(m: Measurement, lossless: bool = True) -> None:
            prefix = min(rows, self.args.cio_rows)
            self.reset_server()
            args = {
                "db": self.db,
                "sql": f"{sql} LIMIT {prefix}",
                "host": self.base_url.removesuffix("/v1"),
                "api_key": API_KEY,
                "lossless": lossless,
            }
            report = self._from_child(m, self.worker("customerio", args, self.peers_python))
            stats = self.server_stats()
            m.details["server"] = stats
            if report["rows_read"] != prefix:
                raise RuntimeError(f"read {report['rows_read']:,} rows of {prefix:,}")
            if lossless:
                self._check_delivered(m, prefix)
                m.note = f"measured on the first {prefix:,} rows; {stats['requests']:,} requests"
            else:
                m.rows = stats["calls"]
                m.note = (
                    f"read {prefix:,} rows, delivered {stats['calls']:,}: "
                    f"{report['dropped']:,} dropped silently (queue full)"
                )

        def dlt(m: Measurement) -> None:
            self._from_child(m, self.worker("dlt", {"db": self.db, "view": data.view}, self.peers_python))
            if m.rows != rows:
                raise RuntimeError(f"dlt yielded {m.rows:,} rows")

        self.measure("1", rows, cli)
        self.measure("2", rows, pymysql)
        self.measure("3", rows, extract)
        self.measure("3m", rows, lambda m: extract(m, "mysqlclient"))
        self.measure("3x", rows, lambda m: extract(m, "connectorx"))
        self.measure("4", rows, mapping)
        self.measure("5", rows, end_to_end)
        self.measure("5m", rows, lambda m: end_to_end(m, driver="mysqlclient"))
        self.measure("5f", rows, lambda m: end_to_end(m, "ours_end_to_end_fast"))
        self.measure("6", rows, customerio)
        self.measure("6n", rows, lambda m: customerio(m, lossless=False))
        self.measure("7", rows, dlt)
        self.reset_server()

    # --- set-up and report -------------------------------------------------------------------------
    def export_commit(self) -> None:
        """--ours-commit: measure the package as committed, whatever the working tree holds now."""
        if not self.args.ours_commit:
            return
        repo = BENCH_DIR.parent
        rev = ["git", "-C", str(repo), "rev-parse", "--short", f"{self.args.ours_commit}^{{commit}}"]
        self.ours_commit_id = subprocess.run(rev, capture_output=True, text=True, check=True).stdout.strip()
        target = self.workdir / "ours"
        target.mkdir()
        archive = ["git", "-C", str(repo), "archive", self.ours_commit_id, "reverse_etl_assets"]
        tar = subprocess.Popen(["tar", "-x", "-C", str(target)], stdin=subprocess.PIPE)
        subprocess.run(archive, stdout=tar.stdin, check=True)
        tar.stdin.close()
        if tar.wait() != 0:
            raise SystemExit("extracting the git archive failed")
        self.args.ours_path = str(target)
        say(f"measuring reverse_etl_assets as committed in {self.ours_commit_id}, exported to {target}")

    def ensure_peers(self) -> None:
        if not {"6", "6n", "7"} & set(self.args.only):
            return
        if self.args.peers_python:
            self.peers_python = self.args.peers_python
        elif not _imports(sys.executable, PEER_IMPORTS):
            python = PEERS_VENV / "bin" / "python"
            if not (python.exists() and _imports(str(python), PEER_IMPORTS)):
                say(f"the peers' libraries are not installed here: creating {PEERS_VENV}")
                subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
                subprocess.run(
                    [str(python), "-m", "pip", "install", "--quiet", *PEER_REQUIREMENTS], check=True
                )
            self.peers_python = str(python)
        say(f"peers run with {self.peers_python}")

    def header(self) -> list[str]:
        cpu = _cpu_model()
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        server_sql = "SELECT CONCAT(VERSION(), ', buffer pool ', @@innodb_buffer_pool_size >> 20, ' MB')"
        server = _one_line([*self.cli_argv(server_sql), "--skip-column-names"])
        ours = ("reverse-etl", "PyMySQL", "pyarrow", "orjson", "SQLAlchemy")
        versions = ", ".join(f"{name} {_version(name)}" for name in ours)
        env = {**os.environ}
        if self.args.ours_path:
            env["PYTHONPATH"] = self.args.ours_path
        quiet: dict[str, Any] = {"capture_output": True, "text": True}
        code = "import reverse_etl_assets as p; print(p.__file__.rsplit('/', 2)[0])"
        where = subprocess.run([sys.executable, "-c", code], env=env, cwd=BENCH_DIR, **quiet).stdout.strip()
        if self.args.ours_commit:
            commit = f"git archive of {self.args.ours_commit} = {self.ours_commit_id}"
        else:
            done = subprocess.run(["git", "-C", where or ".", "describe", "--always", "--dirty"], **quiet)
            commit = done.stdout.strip() if done.returncode == 0 else "not a git checkout"
        peers = "not used"
        if {"6", "6n", "7"} & set(self.args.only):
            names = ("customerio-cdp-analytics", "dlt", "PyMySQL")
            code = (
                f"from importlib.metadata import version as v; print(', '.join(n+' '+v(n) for n in {names}))"
            )
            peers = _one_line([self.peers_python, "-c", code])
        return [
            f"date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; load average {_load()} at the start"
            + (f", best of {self.args.repeat} runs per measurement" if self.args.repeat > 1 else ""),
            f"machine: {os.cpu_count()} cores ({cpu}), {memory_gb:.0f} GB RAM, {platform.platform()}",
            f"database: {server} on {self.db['host']}:{self.db['port']}",
            f"python {platform.python_version()}: {versions}",
            f"ours: reverse_etl_assets from {where or '?'} ({commit})",
            f"peers: {peers}",
            f"server latency: {self.args.latency_ms:g} ms per request"
            + (", every body parsed (--verify)" if self.args.verify else ""),
        ]

    def report(self, header: list[str]) -> str:
        lines = ["", *header, ""]
        columns = ["measurement", "rows", "seconds", "rows/s", "peak RSS MB", "CPU s", "db CPU s"]
        columns += ["vs (1)", "vs (2)", "vs (6)"]
        table = [columns]
        for size in self.args.rows:
            base = {m.key: m for m in self.results if m.dataset_rows == size and m.ok}
            for m in (m for m in self.results if m.dataset_rows == size):
                if not m.ok:
                    table.append([LABELS[m.key], f"{size:,}", "FAILED", "", "", "", "", "", "", ""])
                    continue
                table.append(
                    [
                        LABELS[m.key],
                        f"{m.rows:,}",
                        f"{m.seconds:.2f}",
                        f"{m.rows_per_second:,.0f}",
                        f"{m.peak_rss_kb / 1024:.0f}",
                        f"{m.cpu_seconds:.1f}",
                        "" if m.db_cpu_seconds is None else f"{m.db_cpu_seconds:.1f}",
                        _ratio(m, base.get("1"), "%"),
                        _ratio(m, base.get("2"), "%"),
                        _ratio(m, base.get("6"), "x"),
                    ]
                )
            table.append(None)
        lines += _format_table(table)
        lines += ["", *self.summary(), "", "Notes:"]
        for m in self.results:
            if m.note:
                lines.append(f"  {LABELS[m.key].split(' ', 1)[0]} at {m.dataset_rows:,} rows: {m.note}")
        lines += [f"  {note}" for note in self.notes]
        lines.append(f"  load average at the end: {_load()}")
        return "\n".join(lines)

    def summary(self) -> list[str]:
        lines = []
        for size in self.args.rows:
            got = {m.key: m for m in self.results if m.dataset_rows == size and m.ok}
            e2e = got.get("5")
            if e2e is None:
                continue
            checks = [
                ("end to end >= 80% of (2)", got.get("2"), 0.8),
                ("end to end >= 50x (6)", got.get("6"), 50),
            ]
            for text, other, target in checks:
                if other is not None:
                    ratio = e2e.rows_per_second / other.rows_per_second
                    verdict = "met" if ratio >= target else "NOT met"
                    lines.append(f"target at {size:,} rows: {text}: {ratio:.2f} -> {verdict}")
            fast = got.get("5f")
            for text, other, target in [
                ("fast path >= 40% of (1)", got.get("1"), 0.4),
                ("fast path >= 50x (6)", got.get("6"), 50),
            ]:
                if fast is not None and other is not None:
                    ratio = fast.rows_per_second / other.rows_per_second
                    verdict = "met" if ratio >= target else "NOT met"
                    lines.append(f"target at {size:,} rows: {text}: {ratio:.2f} -> {verdict}")
        if "5f" not in self.args.only:
            lines.append("target: fast path >= 40% of (1): not measured (see --fast-path)")
        sizes = sorted(self.args.rows)
        for key in ("5", "5f"):
            found = {m.dataset_rows: m for m in self.results if m.key == key and m.ok}
            small, large = found.get(sizes[0]), found.get(sizes[-1])
            if small and large and small is not large:
                ratio = large.peak_rss_kb / small.peak_rss_kb
                verdict = "met" if ratio <= 1.3 else "NOT met"
                lines.append(
                    f"peak RSS of ({key}) at {sizes[-1]:,} rows / at {sizes[0]:,} rows: "
                    f"{large.peak_rss_kb / 1024:.0f} MB / {small.peak_rss_kb / 1024:.0f} MB = {ratio:.2f} "
                    f"(target <= 1.3 -> {verdict})"
                )
        return lines

    def close(self) -> None:
        self.stop_server()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _ratio(m: Measurement, base: Measurement | None, style: str) -> str:
    if base is None or base is m or not base.rows_per_second:
        return ""
    ratio = m.rows_per_second / base.rows_per_second
    return f"{ratio:.0%}" if style == "%" else f"{ratio:.1f}x"


def _format_table(rows: list[list[str] | None]) -> list[str]:
    body = [r for r in rows if r is not None]
    widths = [max(len(r[i]) for r in body) for i in range(len(body[0]))]
    rule = "  ".join("-" * w for w in widths)

    def line(r: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    out = [line(body[0]), rule]
    for r in rows[1:]:
        out.append(rule if r is None else line(r))
    return out[:-1] if out[-1] == rule else out


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _imports(python: str, statement: str) -> bool:
    return subprocess.run([python, "-c", statement], capture_output=True).returncode == 0


def _one_line(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True)
    lines = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return lines[-1] if lines else "?"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _find_pid(names: tuple[str, ...]) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in names:
                    return int(entry.name)
            except OSError:
                continue
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--quick", action="store_true", help="a smoke test on 100,000 rows (with --verify)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[*ALL, *FAST_PATH],
        default=ALL,
        help="measurements to run (default: all)",
    )
    parser.add_argument(
        "--fast-path",
        action="store_true",
        help="also measure (5m) and (5f): end to end with mysqlclient, and ours.end_to_end_fast",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run each measurement N times and keep the fastest run"
    )
    parser.add_argument("--cio-rows", type=int, default=100_000, help="rows for (6), a prefix of the table")
    parser.add_argument(
        "--latency-ms", type=float, default=20.0, help="the fake server's latency, per request"
    )
    parser.add_argument("--verify", action="store_true", help="the server parses every body and checks it")
    parser.add_argument(
        "--map-mode", choices=["preload", "stream"], default="preload",
        help="(4): extract every batch before timing the mapping, or map each batch as it is read",
    )  # fmt: skip
    parser.add_argument(
        "--ours-path",
        help="a folder holding the reverse_etl_assets package to measure, instead of the installed one "
        "(e.g. a `git archive` of a commit, while the working tree is being edited)",
    )
    parser.add_argument(
        "--ours-commit", help="measure reverse_etl_assets as committed in this git revision (e.g. HEAD)"
    )
    parser.add_argument("--peers-python", help="interpreter with the peers' libraries (default: this one)")
    parser.add_argument("--regenerate", action="store_true", help="drop and regenerate the bench tables")
    parser.add_argument("--json-out", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--mysql-host", default="127.0.0.1")
    parser.add_argument("--mysql-port", type=int, default=3306)
    parser.add_argument("--mysql-user", default="root", help=f"password, if any, in ${PASSWORD_ENV}")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = [100_000]
        args.cio_rows = min(args.cio_rows, 20_000)
        args.verify = True
    if args.fast_path:
        args.only = [*args.only, *(key for key in FAST_PATH if key not in args.only)]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    began = time.monotonic()
    bench = Bench(args)
    try:
        bench.export_commit()
        bench.ensure_peers()
        header = bench.header()
        if {"5", *FAST_PATH, "6", "6n"} & set(args.only):
            bench.start_server()
            bench.check_server_capacity()
        else:
            bench.notes.append("fake server not started")
        for rows in args.rows:
            bench.run_size(rows)
        print(bench.report(header), flush=True)
        if args.json_out:
            payload = {"header": header, "results": [asdict(m) for m in bench.results], "notes": bench.notes}
            args.json_out.write_text(json.dumps(payload, indent=2, default=str))
    finally:
        bench.close()
    say(f"done in {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
