"""`reverse-etl dev`: run `dagster dev` as a child and reload its code location when the
configuration file changes.

Dagster reloads a code location when asked (the UI's Reload button), never because a data file
changed; the definitions are built from the YAML file, so an edit would go unseen until a restart.
Here the file is polled (its path, mtime, size and content hash, once a second: no dependency, and it
works on every file system and with editors that save by renaming a new file over the old one) and
each change asks the webserver, through Dagster's public GraphQL client, to reload every location.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import requests
from dagster_graphql import DagsterGraphQLClient, ReloadRepositoryLocationStatus

from reverse_etl_assets.config.loading import config_path

POLL_SECONDS = 1.0  # how often the file is looked at
SETTLE_SECONDS = 0.2  # a changed file is read again after this, until two reads agree (half-saved files)
RELOAD_TIMEOUT_SECONDS = 300  # a reload waits for the code server to build the definitions again
DEFAULT_HOST = "127.0.0.1"  # dagster dev's defaults
DEFAULT_PORT = 3000
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# The locations and their load errors: the client lists neither, and its reload result holds only
# the outermost error ("Error occurred during the loading of Dagster definitions"), not its causes.
LOCATIONS_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name
  locationOrLoadError { __typename ... on PythonError { message causes { message } } } } } } }"""


@dataclass(frozen=True)
class Fingerprint:
    """What the file looks like now; any difference means "reload". `digest` catches an edit that
    keeps the size within the file system's mtime granularity; `exists` a deletion."""

    path: Path
    exists: bool
    mtime_ns: int = 0
    size: int = 0
    digest: str = ""


def fingerprint() -> Fingerprint:
    """The file the code location reads: `config_path()` is asked each time, since creating or
    deleting ./reverse_etl.yaml changes which file that is (the demo is the fallback)."""
    path = config_path()
    try:
        with path.open("rb") as file:
            stat = os.fstat(file.fileno())
            digest = hashlib.sha256(file.read()).hexdigest()
    except OSError:  # missing (deleted, or between an editor's unlink and rename), or unreadable
        return Fingerprint(path, exists=False)
    return Fingerprint(path, True, stat.st_mtime_ns, stat.st_size, digest)


def server_address(dagster_args: Sequence[str]) -> tuple[str, int | None]:
    """The host and port `dagster dev` will serve on, from the arguments passed through to it
    (None: no port given). A wildcard host is reached on the loopback."""
    host, port = DEFAULT_HOST, None
    args = list(dagster_args)
    for index, arg in enumerate(args):
        following = args[index + 1] if index + 1 < len(args) else None
        for names, short in ((("--host", "--dagit-host"), "-h"), (("--port", "--dagit-port"), "-p")):
            value = None
            if arg in (*names, short):
                value = following
            elif arg.startswith(tuple(f"{name}=" for name in names)):
                value = arg.split("=", 1)[1]
            elif arg.startswith(short) and len(arg) > 2 and not arg.startswith("--"):
                value = arg[2:]
            if value is not None and short == "-h":
                host = value
            elif value is not None and value.isdigit():
                port = int(value)
    if host in ("", "0.0.0.0"):
        host = DEFAULT_HOST
    elif host == "::":
        host = "::1"
    return host, port


def port_in_use(host: str, port: int) -> bool:
    """As the webserver decides to move off port 3000 (a bind that fails)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class ConfigReloader:
    """Polls the configuration file and asks the webserver at host:port to reload its code
    locations after each change; one line on stderr says what happened."""

    def __init__(self, host: str, port: int) -> None:
        self.base_url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        self.client = DagsterGraphQLClient(
            f"[{host}]" if ":" in host else host, port_number=port, timeout=RELOAD_TIMEOUT_SECONDS
        )
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="reverse-etl config watcher", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        seen = fingerprint()  # before the server starts: an edit made while it starts is not lost
        say(f"watching {seen.path} for changes (the code location reloads on each)")
        pending, said_failure, what = False, False, ""
        while not self.stopped.wait(POLL_SECONDS):
            now = fingerprint()
            if now != seen:
                now = self._settled(now)
                if now != seen:  # not changed back while settling
                    pending, said_failure, what, seen = True, False, describe_change(seen, now), now
            if not pending or not self._answers():
                continue  # a change made before the server answers is reloaded once it does
            try:
                outcome = self.reload()
            except Exception as error:  # e.g. the server is shutting down: try again, say it once
                if not self.stopped.is_set() and not said_failure:
                    say(f"{what}: could not ask {self.base_url} to reload ({one_line(error)}); retrying")
                    said_failure = True
                continue
            if not self.stopped.is_set():
                say(f"{what}: {outcome}")
            pending = False

    def _settled(self, now: Fingerprint) -> Fingerprint:
        while not self.stopped.wait(SETTLE_SECONDS):
            again = fingerprint()
            if again == now:
                break
            now = again
        return now

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.base_url}/server_info", timeout=5).ok
        except requests.RequestException:
            return False

    def locations(self) -> dict[str, str | None]:
        """Each code location's name and its load error (None when it loaded), in words."""
        answer = requests.post(f"{self.base_url}/graphql", json={"query": LOCATIONS_QUERY}, timeout=60)
        answer.raise_for_status()
        workspace = answer.json()["data"]["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            raise RuntimeError(f"the workspace could not be read ({workspace['__typename']})")
        found = {}
        for entry in workspace["locationEntries"]:
            error = entry["locationOrLoadError"] or {}
            messages = [error.get("message") or ""] + [cause["message"] for cause in error.get("causes", [])]
            found[entry["name"]] = (
                first_problem(messages) if error.get("__typename") == "PythonError" else None
            )
        return found

    def reload(self) -> str:
        """Reload every location; what happened, in words."""
        results = []
        for name in self.locations():
            info = self.client.reload_repository_location(name)
            if info.status == ReloadRepositoryLocationStatus.SUCCESS:
                results.append(f"reloaded code location {name!r}")
                continue
            problem = self.locations().get(name) or first_problem([info.message or info.failure_type or ""])
            results.append(
                f"the new configuration has errors: code location {name!r} did not load (the UI shows why, "
                f"under Deployment): {problem}"
            )
        return "; ".join(results) or "no code location to reload"


def describe_change(before: Fingerprint, after: Fingerprint) -> str:
    if before.path != after.path:
        return f"the configuration is now {after.path}" + ("" if after.exists else " (missing)")
    if not after.exists:
        return f"{after.path.name} was deleted"
    if not before.exists:
        return f"{after.path.name} was created"
    return f"{after.path.name} changed"


def first_problem(messages: Sequence[str]) -> str:
    """The first problem in a load error and its causes: a ConfigError lists its problems as
    '  - file, line N: ...'; else the innermost cause's first line."""
    lines = [line.strip() for message in messages for line in message.splitlines() if line.strip()]
    listed = [line[2:] for line in lines if line.startswith("- ")]
    last = [line for line in messages[-1].splitlines() if line.strip()] if messages else []
    return one_line(listed[0] if listed else last[0] if last else "unknown error")


def one_line(text: object, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def say(message: str) -> None:
    print(f"reverse-etl dev: {message}", file=sys.stderr, flush=True)


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, what the child runs before `dagster dev` starts: ask the kernel for a SIGTERM when
    this process dies, even by SIGKILL, so that `dagster dev` then shuts down instead of living on
    in its own process group. (libc is opened here, before the fork.)"""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # this process died before that took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def run_dagster_dev(command: Sequence[str], dagster_args: Sequence[str]) -> int:
    """Run `command` (`dagster dev ...`) until it exits, reloading its code location on each edit of
    the configuration file; its exit code (128 + N when killed by signal N).

    The child has a process group of its own, so a Ctrl-C in the terminal reaches this process only
    and is forwarded once (a second SIGINT would cut `dagster dev`'s own orderly shutdown short).
    """
    command = list(command)
    host, port = server_address(dagster_args)
    if port is None:
        port = DEFAULT_PORT
        if port_in_use(host, port):  # dagster would pick a free port and not say which: pick it here
            port = free_port(host)
            say(f"port {DEFAULT_PORT} is in use: serving on {port}")
            command += ["-p", str(port)]
    reloader = ConfigReloader(host, port)
    child: subprocess.Popen[bytes] | None = None
    received: list[int] = []  # signals that came before the child existed

    def forward(signum: int, _frame: FrameType | None) -> None:
        reloader.stop()
        if child is None:
            received.append(signum)
        else:
            child.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    child = subprocess.Popen(command, process_group=0, preexec_fn=_die_with_parent())
    for signum in received[:1]:
        forward(signum, None)
    if not received and "--help" not in dagster_args:
        reloader.start()
    try:
        code = child.wait()
    finally:
        reloader.stop()
    return 128 - code if code < 0 else code
