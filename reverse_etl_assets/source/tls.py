"""`ssl.mode` (the `mysql` client's `--ssl-mode` values) → PyMySQL connection arguments, and hints
that turn OpenSSL's and the server's words into what to change in the configuration."""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from reverse_etl_assets.config.models import MySQLDatabase, SQLiteDatabase, TlsConfig
from reverse_etl_assets.source.errors import SourceError

T = TypeVar("T")


REQUIRES_TLS = ("required", "verify-ca", "verify-identity")


def mysqlclient_tls_args(tls: TlsConfig) -> dict[str, Any]:
    """The same modes for mysqlclient, which takes them as `ssl_mode` and a dict of files."""
    if tls.key and not tls.cert:
        raise OSError(f"ssl.key ({tls.key}) is set but ssl.cert is not: a client certificate needs both")
    files = {
        name: _readable(f"ssl.{name}", path)
        for name, path in (("ca", tls.ca), ("cert", tls.cert), ("key", tls.key))
        if path is not None
    }
    args: dict[str, Any] = {"ssl_mode": tls.mode.upper().replace("-", "_")}
    if files:
        args["ssl"] = files
    return args


def pymysql_tls_args(tls: TlsConfig) -> dict[str, Any]:
    """Raises OSError naming the setting and the file when a CA, certificate or key cannot be read."""
    if tls.mode == "disabled":
        return {"ssl_disabled": True}
    if tls.mode == "preferred" and not tls.cert:
        return {}  # PyMySQL uses TLS when the server offers it, without verifying it
    if tls.key and not tls.cert:
        raise OSError(f"ssl.key ({tls.key}) is set but ssl.cert is not: a client certificate needs both")
    # With ssl.ca, only that CA is trusted; without it, the system's CAs.
    cafile = _readable("ssl.ca", tls.ca) if tls.ca else None
    trusted = f"ssl.ca ({tls.ca})" if tls.ca else "the system's CA certificates"
    context = _load(trusted, lambda: ssl.create_default_context(cafile=cafile))
    # As PyMySQL does: Python 3.13 turns strict checks on, which refuse certificates that MySQL
    # generates itself (no authority key identifier).
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    if tls.mode in ("required", "preferred"):
        # Encrypted but not authenticated, like the mysql client's REQUIRED mode. `preferred` with a
        # client certificate lands here too: a certificate can only be sent over TLS.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.check_hostname = tls.mode == "verify-identity"
        context.verify_mode = ssl.CERT_REQUIRED
    if tls.cert:
        cert = _readable("ssl.cert", tls.cert)
        key = _readable("ssl.key", tls.key) if tls.key else None
        setting = f"ssl.cert ({tls.cert}) and ssl.key ({tls.key})" if tls.key else f"ssl.cert ({tls.cert})"
        _load(setting, lambda: context.load_cert_chain(cert, key))
    return {"ssl": context}


def _readable(setting: str, path: Path) -> str:
    if not path.is_file():
        problem = "is not a file" if path.exists() else "does not exist"
        raise OSError(f"{setting}: the file {path} {problem}")
    return str(path)


def _load(setting: str, load: Callable[[], T]) -> T:
    """Name the setting in OpenSSL's complaint: `[X509: NO_CERTIFICATE_OR_CRL_FOUND] ...`."""
    try:
        return load()
    except ssl.SSLError as error:
        raise OSError(f"{setting} could not be loaded: {error}") from None
    except OSError as error:
        raise OSError(f"{setting} could not be read: {error.strerror or error}") from None


_NOT_VALID_FOR = re.compile(r"certificate is not valid for '([^']*)'")

_CLIENT_CERT_REFUSED = (
    "alert unknown ca",
    "alert bad certificate",
    "alert certificate unknown",
    "alert certificate required",
    "alert access denied",
    "eof occurred in violation of protocol",
)


def tls_error_hint(message: str, tls: TlsConfig, password_env: str | None = None) -> str | None:
    """A short hint to append to a connection error, or None when TLS is not the likely cause."""
    lowered = message.lower()
    if "certificate verify failed" in lowered:
        host = _NOT_VALID_FOR.search(message)
        if host or "mismatch" in lowered:
            name = f"host name {host.group(1)!r}" if host else "host name"
            return (
                f"; the {name} does not match the server's certificate (ssl.mode verify-identity): "
                "connect with a name the certificate covers, or use ssl.mode verify-ca"
            )
        if "expired" in lowered or "not yet valid" in lowered:
            return "; the server's certificate could not be verified: it has expired or is not yet valid"
        if tls.ca:
            return (
                f"; the server's certificate could not be verified: it is not signed by the CA "
                f"in ssl.ca ({tls.ca})"
            )
        return (
            "; the server's certificate could not be verified against the system's trusted CAs: "
            "set ssl.ca to the CA certificate that signed it"
        )
    if "ssl is required but the server doesn't support it" in lowered:
        return (
            f"; the server does not offer TLS and ssl.mode is {tls.mode}: enable TLS on the server, "
            "or use ssl.mode preferred"
        )
    if tls.cert and any(words in lowered for words in _CLIENT_CERT_REFUSED):
        return (
            f"; the server ended the TLS handshake: it may not trust the client certificate in "
            f"ssl.cert ({tls.cert}), which must be signed by a CA in the server's ssl_ca"
        )
    if "(1045)" in message or "access denied for user" in lowered:
        # Most often a wrong password: say so first. The server answers an account that requires
        # TLS or a client certificate with the same words.
        secret = f" (the variable {password_env})" if password_env else " (none is set: password_env)"
        hint = f"; check the user name and its password{secret}"
        if tls.mode == "disabled":
            return (
                f"{hint}. If they are right, the account may require TLS (REQUIRE SSL): use another ssl.mode"
            )
        if not tls.cert:
            return (
                f"{hint}. If they are right, the account may require a client certificate (REQUIRE X509): "
                "set ssl.cert and ssl.key"
            )
        return hint
    return None


@contextmanager
def tls_error_hints(database: MySQLDatabase | SQLiteDatabase) -> Iterator[None]:
    """Append `tls_error_hint` to a SourceError raised inside the block."""
    try:
        yield
    except SourceError as error:
        hint = (
            tls_error_hint(str(error), database.ssl, database.password_env)
            if isinstance(database, MySQLDatabase)
            else None
        )
        if hint is None:
            raise
        raise SourceError(f"{error}{hint}") from None
