"""A TCP relay between ConnectorX and the database that stops reading from the server on request.

ConnectorX hands its batches over through an unbounded channel, so with a consumer slower than
it (mapping and delivery are) it would read the whole result into memory. While the relay is
paused, the rows stay on the server's side of the socket and the server waits to write (our
session lets it wait an hour: net_write_timeout), so memory holds a few batches whatever the size
of the result. The direction towards the server is never paused.

The relay runs in a process of its own: ConnectorX holds Python's lock while it connects, so a
relay thread in the same process could not answer it.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from typing import IO

from reverse_etl_assets.source.errors import SourceError

_CHUNK = 256 * 1024


class BackpressureRelay:
    """A relay process listening on 127.0.0.1 that relays each connection to `host:port`;
    `pause()` stops reading from the server until `resume()`."""

    def __init__(self, host: str, port: int, connect_timeout: float) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, host, str(port), str(connect_timeout)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.port = int(self._command(b""))

    def pause(self) -> None:
        self._command(b"p", answer=False)

    def resume(self) -> None:
        self._command(b"r", answer=False)

    @property
    def bytes_from_server(self) -> int:
        """Relayed from the server so far (for tests and measurements)."""
        return int(self._command(b"?"))

    def close(self) -> None:
        """Drop every connection: ConnectorX's reading ends, and the server ends the query."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                pipe.close()

    def _command(self, command: bytes, answer: bool = True) -> bytes:
        stdin: IO[bytes] = self._process.stdin  # type: ignore[assignment]
        stdout: IO[bytes] = self._process.stdout  # type: ignore[assignment]
        try:
            if command:
                stdin.write(command)
                stdin.flush()
            reply = stdout.readline().strip() if answer else b"0"
        except OSError:
            reply = b""
        if not reply:
            raise SourceError(
                f"the relay between ConnectorX and the database stopped (status {self._process.poll()})"
            )
        return reply


class _Relay:
    """The relay process's side."""

    def __init__(self, host: str, port: int, connect_timeout: float) -> None:
        self._upstream = (host, port)
        self._connect_timeout = connect_timeout
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.bytes_from_server = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._listener.accept()
            try:
                server = socket.create_connection(self._upstream, timeout=self._connect_timeout)
                server.settimeout(None)
            except OSError:
                client.close()  # ConnectorX reports the failed connection
                continue
            for source, target, paced in ((client, server, False), (server, client, True)):
                threading.Thread(target=self._pump, args=(source, target, paced), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, paced: bool) -> None:
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        try:
            while True:
                if paced:
                    self.flowing.wait()
                received = source.recv_into(buffer)
                if not received:
                    break
                target.sendall(view[:received])
                if paced:
                    self.bytes_from_server += received
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)


def main() -> None:
    relay = _Relay(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
    out = sys.stdout.buffer
    out.write(f"{relay.port}\n".encode())
    out.flush()
    while command := sys.stdin.buffer.read(1):  # until the parent closes the pipe or goes away
        if command == b"p":
            relay.flowing.clear()
        elif command == b"r":
            relay.flowing.set()
        elif command == b"?":
            out.write(f"{relay.bytes_from_server}\n".encode())
            out.flush()


if __name__ == "__main__":
    main()
