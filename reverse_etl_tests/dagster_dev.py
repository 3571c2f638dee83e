"""Start `reverse-etl dev` (that is, `dagster dev`) headless and talk to it over GraphQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

PROJECT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DagsterDev:
    """`reverse-etl dev` in a folder of its own: its own ./.dagster instance and ./outbox."""

    def __init__(self, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.cwd = cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (cwd / "workspace.yaml").write_text((PROJECT / "workspace.yaml").read_text())
        environment = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "REVERSE_ETL_CONFIG")}
        environment.update(env or {})
        self.log = (cwd / "dagster_dev.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reverse_etl_assets.cli", "dev", "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=cwd,
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_until_ready(self, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"dagster dev exited early:\n{self.output()}")
            try:
                answer = requests.get(f"{self.url}/server_info", timeout=2)
                if answer.ok:
                    self._wait_for_code_location(deadline)
                    return answer.json()
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"dagster dev did not answer in {timeout} s:\n{self.output()}")

    def _wait_for_code_location(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            entries = self.graphql(
                "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
            )["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [
                    e["locationOrLoadError"]
                    for e in entries
                    if e["locationOrLoadError"]["__typename"] == "PythonError"
                ]
                assert not errors, errors
                self.location = entries[0]["name"]
                return
            time.sleep(0.5)
        raise AssertionError("the code location did not load")

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        )
        answer.raise_for_status()
        body = answer.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def materialize(self, asset: str, partition: str) -> str:
        """What the UI's Materialize button does: launch __ASSET_JOB for one asset partition."""
        data = self.graphql(
            """mutation Launch($params: ExecutionParams!) {
                 launchRun(executionParams: $params) {
                   __typename
                   ... on LaunchRunSuccess { run { runId } }
                   ... on PythonError { message }
                   ... on InvalidSubsetError { message }
                 }
               }""",
            {
                "params": {
                    "selector": {
                        "repositoryLocationName": self.location,
                        "repositoryName": "__repository__",
                        "jobName": "__ASSET_JOB",
                        "assetSelection": [{"path": [asset]}],
                    },
                    "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
                }
            },
        )["launchRun"]
        assert data["__typename"] == "LaunchRunSuccess", data
        return data["run"]["runId"]

    def wait_for_run(self, run_id: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.graphql(
                "query Run($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id}
            )["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(0.5)
        raise AssertionError(f"run {run_id} did not finish in {timeout} s")

    def output(self) -> str:
        self.log.flush()
        return (self.cwd / "dagster_dev.log").read_text(errors="replace")[-5000:]

    def locations(self) -> list[dict[str, Any]]:
        """Each code location: its name, load status, and its load error with its causes, as the UI
        shows it (None when it loaded)."""
        entries = self.graphql(
            "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
            "locationOrLoadError { __typename ... on PythonError { message causes { message } } } } } } }"
        )["workspaceOrError"]["locationEntries"]
        locations = []
        for entry in entries:
            error = entry["locationOrLoadError"] or {}
            messages = [error.get("message")] + [cause["message"] for cause in error.get("causes", [])]
            text = "\n".join(message for message in messages if message)
            locations.append(
                {"name": entry["name"], "loadStatus": entry["loadStatus"], "error": text or None}
            )
        return locations

    def asset_names(self) -> set[str]:
        return {
            node["assetKey"]["path"][-1]
            for node in self.graphql("{ assetNodes { assetKey { path } } }")["assetNodes"]
        }

    def answers(self) -> bool:
        """Whether the webserver still answers on its port."""
        try:
            return requests.get(f"{self.url}/server_info", timeout=2).ok
        except requests.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
