"""A MariaDB server of its own that speaks TLS, for the `ssl.mode` tests.

`tls_mariadb` (a session-scoped pytest fixture; import it into a test module to use it) makes, in a
temporary directory:

- a certificate authority, a server certificate it signs for `localhost` and 127.0.0.1, a second
  server certificate for `db.example.internal` only (to provoke a host name mismatch), a client
  certificate, and an unrelated "wrong" CA;
- a datadir (`mariadb-install-db`) and a `mariadbd` on a free port of 127.0.0.1 with
  `--ssl-ca/--ssl-cert/--ssl-key`, run as root when the tests are (`--user=root`);
- users that `REQUIRE SSL`, `REQUIRE X509` and nothing, all with the password in
  `$REVERSE_ETL_TEST_TLS_PASSWORD`, and a database with a small table.

The server is stopped and its files removed when the session ends. If it cannot start, the test
fails with the server's log: it is never skipped.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PASSWORD_ENV = "REVERSE_ETL_TEST_TLS_PASSWORD"
DATABASE = "retl_tls"
SSL_USER = "retl_ssl"  # REQUIRE SSL
X509_USER = "retl_x509"  # REQUIRE X509: a client certificate signed by the server's CA
PLAIN_USER = "retl_plain"  # no TLS requirement
MISMATCHED_HOST_NAME = "db.example.internal"

_START_TIMEOUT_SECONDS = 30
_STOP_TIMEOUT_SECONDS = 20


# --- certificates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """PEM files. `server_*` is what the server serves; `other_server_*` names another host."""

    ca: Path
    server_cert: Path
    server_key: Path
    other_server_cert: Path
    other_server_key: Path
    client_cert: Path
    client_key: Path
    wrong_ca: Path
    wrong_client_cert: Path  # signed by the wrong CA: the server does not trust it
    wrong_client_key: Path


@dataclass
class _Issuer:
    name: x509.Name
    key: rsa.RSAPrivateKey


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _builder(subject: x509.Name, issuer: _Issuer, key: rsa.RSAPrivateKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    )


def _make_ca(directory: Path, stem: str, common_name: str) -> tuple[_Issuer, Path]:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer = _Issuer(name, key)
    cert = (
        _builder(name, issuer, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return issuer, _write_cert(directory / f"{stem}.pem", cert)


def _make_leaf(
    directory: Path,
    stem: str,
    issuer: _Issuer,
    common_name: str,
    usage: x509.ObjectIdentifier,
    alt_names: list[x509.GeneralName] | None = None,
) -> tuple[Path, Path]:
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _builder(subject, issuer, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert = builder.sign(issuer.key, hashes.SHA256())
    return _write_cert(directory / f"{stem}-cert.pem", cert), _write_key(directory / f"{stem}-key.pem", key)


def make_certificates(directory: Path) -> Certificates:
    """A CA and what it signs, plus an unrelated CA, as PEM files in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_path = _make_ca(directory, "ca", "reverse-etl test CA")
    wrong_ca, wrong_ca_path = _make_ca(directory, "wrong-ca", "reverse-etl unrelated CA")
    server = ExtendedKeyUsageOID.SERVER_AUTH
    client = ExtendedKeyUsageOID.CLIENT_AUTH
    server_cert, server_key = _make_leaf(
        directory,
        "server",
        ca,
        "localhost",
        server,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    other_cert, other_key = _make_leaf(
        directory, "other-server", ca, MISMATCHED_HOST_NAME, server, [x509.DNSName(MISMATCHED_HOST_NAME)]
    )
    client_cert, client_key = _make_leaf(directory, "client", ca, X509_USER, client)
    wrong_client_cert, wrong_client_key = _make_leaf(directory, "wrong-client", wrong_ca, X509_USER, client)
    return Certificates(
        ca=ca_path,
        server_cert=server_cert,
        server_key=server_key,
        other_server_cert=other_cert,
        other_server_key=other_key,
        client_cert=client_cert,
        client_key=client_key,
        wrong_ca=wrong_ca_path,
        wrong_client_cert=wrong_client_cert,
        wrong_client_key=wrong_client_key,
    )


# --- the server ---------------------------------------------------------------------------------


@dataclass
class TlsMariaDB:
    """A running MariaDB with TLS on 127.0.0.1:`port`; `admin()` connects as root over its socket."""

    host: str
    port: int
    socket_path: Path
    certificates: Certificates
    password: str
    log_path: Path
    # The files the server was started with; `serving()` swaps their contents.
    active_cert: Path
    active_key: Path

    def config(self, user: str, ssl: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        """A `MySQLDatabase` configuration (as YAML would give it) for one of the users."""
        return {
            "host": self.host,
            "port": self.port,
            "database": DATABASE,
            "user": user,
            "password_env": PASSWORD_ENV,
            "ssl": ssl,
            "connect_timeout_seconds": 5,
            **overrides,
        }

    def admin(self) -> pymysql.connections.Connection:
        return pymysql.connect(
            unix_socket=str(self.socket_path), user="root", password="", autocommit=True, ssl_disabled=True
        )

    def execute(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self.admin() as connection, connection.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())

    @contextmanager
    def serving(self, cert: Path, key: Path) -> Iterator[None]:
        """Serve another certificate (for new connections) until the block ends."""
        self._serve(cert, key)
        try:
            yield
        finally:
            self._serve(self.certificates.server_cert, self.certificates.server_key)

    def _serve(self, cert: Path, key: Path) -> None:
        shutil.copyfile(cert, self.active_cert)
        shutil.copyfile(key, self.active_key)
        self.execute("FLUSH SSL")  # MariaDB 10.4+: reload the certificate files


def _find_program(*names: str) -> str:
    for name in names:
        for directory in (None, "/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
            found = shutil.which(name, path=directory)
            if found:
                return found
    pytest.fail(f"the TLS tests need MariaDB's {names[0]} (apt-get install mariadb-server); not found")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _run_as_root_args() -> list[str]:
    # mariadbd refuses to run as root unless told to; as another user, --user would only warn.
    return ["--user=root"] if os.geteuid() == 0 else []


# Small InnoDB files: mariadb-install-db then takes half a second rather than several.
_SMALL_SERVER_ARGS = ["--innodb-log-file-size=8M", "--innodb-buffer-pool-size=16M"]


def _install_datadir(root: Path) -> Path:
    datadir = root / "data"
    install_db = _find_program("mariadb-install-db", "mysql_install_db")
    command = [
        install_db,
        "--no-defaults",  # must come first: ignore /etc/mysql and ~/.my.cnf
        f"--datadir={datadir}",
        "--auth-root-authentication-method=normal",  # root@localhost, no password, no unix_socket
        "--skip-test-db",
        *_run_as_root_args(),
        *_SMALL_SERVER_ARGS,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return datadir


def _start_server(
    root: Path, datadir: Path, certificates: Certificates
) -> tuple[subprocess.Popen, TlsMariaDB]:
    mariadbd = _find_program("mariadbd", "mysqld")
    active_cert = shutil.copyfile(certificates.server_cert, root / "active-server-cert.pem")
    active_key = shutil.copyfile(certificates.server_key, root / "active-server-key.pem")
    attempts_left = 3
    while True:
        port = _free_port()
        log_path = root / "error.log"
        log_path.unlink(missing_ok=True)
        output_path = root / "mariadbd.out"
        server = TlsMariaDB(
            host="127.0.0.1",
            port=port,
            socket_path=root / "mariadbd.sock",
            certificates=certificates,
            password=os.urandom(12).hex(),
            log_path=log_path,
            active_cert=Path(active_cert),
            active_key=Path(active_key),
        )
        command = [
            mariadbd,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--socket={server.socket_path}",
            f"--pid-file={root / 'mariadbd.pid'}",
            f"--log-error={log_path}",
            f"--tmpdir={root}",
            "--bind-address=127.0.0.1",
            f"--port={port}",
            "--skip-name-resolve",
            "--skip-log-bin",
            f"--ssl-ca={certificates.ca}",
            f"--ssl-cert={active_cert}",
            f"--ssl-key={active_key}",
            *_run_as_root_args(),
            *_SMALL_SERVER_ARGS,
        ]
        with output_path.open("wb") as output:
            process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            try:
                server.admin().close()
                return process, server
            except pymysql.err.OperationalError:
                time.sleep(0.1)
        _stop(process)
        log = f"{_read(output_path)}\n{_read(log_path)}".strip()
        attempts_left -= 1
        if "Address already in use" in log and attempts_left:
            continue  # another process took the port between our probe and the server's bind
        pytest.fail(
            f"the TLS test MariaDB did not start within {_START_TIMEOUT_SECONDS}s "
            f"(exit code {process.returncode}); command: {' '.join(command)}\nserver log:\n{log}"
        )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # mariadbd shuts down cleanly on SIGTERM
    try:
        process.wait(_STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _create_users_and_data(server: TlsMariaDB) -> None:
    with server.admin() as connection, connection.cursor() as cursor:
        # Only root over the socket: no password-less root over TCP while the tests run.
        cursor.execute("SELECT host FROM mysql.user WHERE user = 'root' AND host <> 'localhost'")
        for (host,) in cursor.fetchall():
            cursor.execute("DROP USER 'root'@%s", (host,))
        cursor.execute(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4")
        cursor.execute(f"CREATE TABLE {DATABASE}.customers (id INT PRIMARY KEY, email VARCHAR(100))")
        cursor.execute(
            f"INSERT INTO {DATABASE}.customers VALUES (1, 'ada@example.com'), (2, 'grace@example.com')"
        )
        for user, requirement in ((SSL_USER, "SSL"), (X509_USER, "X509"), (PLAIN_USER, "NONE")):
            cursor.execute(
                f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s REQUIRE {requirement}", (server.password,)
            )
            cursor.execute(f"GRANT SELECT ON {DATABASE}.* TO '{user}'@'%'")


@contextmanager
def running_tls_mariadb() -> Iterator[TlsMariaDB]:
    """Certificates, a datadir and a TLS MariaDB in a temporary directory, all gone afterwards."""
    root = Path(tempfile.mkdtemp(prefix="retl-tls-mariadb-"))
    process = None
    previous_password = os.environ.get(PASSWORD_ENV)
    try:
        certificates = make_certificates(root / "certs")
        datadir = _install_datadir(root)
        process, server = _start_server(root, datadir, certificates)
        _create_users_and_data(server)
        os.environ[PASSWORD_ENV] = server.password
        yield server
    finally:
        if process is not None:
            _stop(process)
        if previous_password is None:
            os.environ.pop(PASSWORD_ENV, None)
        else:
            os.environ[PASSWORD_ENV] = previous_password
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def tls_mariadb() -> Iterator[TlsMariaDB]:
    with running_tls_mariadb() as server:
        yield server
