"""`ssl.mode` against a real MariaDB that speaks TLS: each mode connects (or not) as the `mysql`
client's `--ssl-mode` would, and each failure says what to change."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from reverse_etl_assets.config.models import MySQLDatabase, TlsConfig
from reverse_etl_assets.source.connection import SourceSession, open_read_only_session
from reverse_etl_assets.source.errors import SourceError
from reverse_etl_assets.source.tls import tls_error_hint
from reverse_etl_tests import tls_mariadb as tls
from reverse_etl_tests.tls_mariadb import MISMATCHED_HOST_NAME, PLAIN_USER, SSL_USER, X509_USER, TlsMariaDB

tls_mariadb = tls.tls_mariadb  # the session-scoped fixture: one TLS MariaDB for all these tests


@contextmanager
def session(server: TlsMariaDB, user: str, ssl: dict[str, Any], **overrides: Any) -> Iterator[SourceSession]:
    with open_read_only_session(
        "app_db", MySQLDatabase.model_validate(server.config(user, ssl, **overrides))
    ) as s:
        yield s


def cipher(s: SourceSession) -> str:
    [(name, value)] = s.connection.exec_driver_sql("SHOW SESSION STATUS LIKE 'Ssl_cipher'").all()
    assert name == "Ssl_cipher"
    return value


def refusal(server: TlsMariaDB, user: str, ssl: dict[str, Any], **overrides: Any) -> str:
    with pytest.raises(SourceError) as caught, session(server, user, ssl, **overrides):
        pass
    return str(caught.value)


def verify(server: TlsMariaDB, mode: str = "verify-ca", **files: Path) -> dict[str, Any]:
    return {"mode": mode, "ca": str(server.certificates.ca), **{k: str(v) for k, v in files.items()}}


def client_certificate(server: TlsMariaDB) -> dict[str, Path]:
    return {"cert": server.certificates.client_cert, "key": server.certificates.client_key}


# --- disabled, preferred, required ---------------------------------------------------------------


def test_disabled_connects_without_tls_and_reads(tls_mariadb):
    with session(tls_mariadb, PLAIN_USER, {"mode": "disabled"}) as s:
        assert cipher(s) == ""
        [batch] = s.stream_batches("SELECT id, email FROM customers ORDER BY id", 10)
        assert s.server_time() > 0
    assert batch.to_pylist() == [
        {"id": 1, "email": "ada@example.com"},
        {"id": 2, "email": "grace@example.com"},
    ]


def test_disabled_is_refused_for_an_account_that_requires_tls(tls_mariadb):
    message = refusal(tls_mariadb, SSL_USER, {"mode": "disabled"})
    assert message.startswith(
        f"database 'app_db': connecting failed: (1045) Access denied for user '{SSL_USER}'"
    )
    assert "; check the user name and its password" in message  # a wrong password, most often
    assert message.endswith(
        "If they are right, the account may require TLS (REQUIRE SSL): use another ssl.mode"
    )


@pytest.mark.parametrize("user", [PLAIN_USER, SSL_USER])
def test_preferred_uses_tls_when_the_server_offers_it(tls_mariadb, user):
    with session(tls_mariadb, user, {"mode": "preferred"}) as s:
        assert cipher(s) != ""


def test_preferred_is_the_default(tls_mariadb):
    config = tls_mariadb.config(SSL_USER, {})
    del config["ssl"]
    assert MySQLDatabase.model_validate(config).ssl == TlsConfig(mode="preferred")
    with open_read_only_session("app_db", MySQLDatabase.model_validate(config)) as s:
        assert cipher(s) != ""


def test_required_encrypts_without_verifying_the_certificate(tls_mariadb):
    # No CA, and a certificate that names another host: `required` checks neither.
    with (
        tls_mariadb.serving(
            tls_mariadb.certificates.other_server_cert, tls_mariadb.certificates.other_server_key
        ),
        session(tls_mariadb, SSL_USER, {"mode": "required"}) as s,
    ):
        assert cipher(s) != ""


# --- verify-ca, verify-identity ------------------------------------------------------------------


def test_verify_ca_with_the_servers_ca(tls_mariadb):
    with session(tls_mariadb, SSL_USER, verify(tls_mariadb)) as s:
        assert cipher(s) != ""


def test_verify_ca_with_another_ca_says_the_certificate_could_not_be_verified(tls_mariadb):
    wrong_ca = tls_mariadb.certificates.wrong_ca
    message = refusal(tls_mariadb, SSL_USER, {"mode": "verify-ca", "ca": str(wrong_ca)})
    assert message.startswith("database 'app_db': connecting failed: (2003) Can't connect")
    assert "certificate verify failed" in message
    assert message.endswith(
        f"; the server's certificate could not be verified: it is not signed by the CA in ssl.ca ({wrong_ca})"
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_verify_identity_with_a_host_name_the_certificate_covers(tls_mariadb, host):
    with session(tls_mariadb, SSL_USER, verify(tls_mariadb, "verify-identity"), host=host) as s:
        assert cipher(s) != ""


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_verify_identity_says_when_the_host_name_does_not_match_the_certificate(tls_mariadb, host):
    certificates = tls_mariadb.certificates
    with tls_mariadb.serving(certificates.other_server_cert, certificates.other_server_key):
        message = refusal(tls_mariadb, SSL_USER, verify(tls_mariadb, "verify-identity"), host=host)
        # What the hint suggests works: the certificate is signed by the CA, only the name differs.
        with session(tls_mariadb, SSL_USER, verify(tls_mariadb), host=host) as s:
            assert cipher(s) != ""
    assert "certificate verify failed" in message
    assert message.endswith(
        f"; the host name '{host}' does not match the server's certificate (ssl.mode verify-identity): "
        "connect with a name the certificate covers, or use ssl.mode verify-ca"
    )
    assert MISMATCHED_HOST_NAME not in message  # the server's name is not ours to guess


# --- client certificates -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["preferred", "required", "verify-ca", "verify-identity"])
def test_a_client_certificate_lets_in_an_account_that_requires_x509(tls_mariadb, mode):
    with session(tls_mariadb, X509_USER, verify(tls_mariadb, mode, **client_certificate(tls_mariadb))) as s:
        assert cipher(s) != ""
        [batch] = s.stream_batches("SELECT COUNT(*) AS n FROM customers", 10)
    assert batch.to_pylist() == [{"n": 2}]


def test_an_account_that_requires_x509_is_refused_without_a_client_certificate(tls_mariadb):
    message = refusal(tls_mariadb, X509_USER, verify(tls_mariadb, "verify-identity"))
    assert f"(1045) Access denied for user '{X509_USER}'" in message
    assert "; check the user name and its password" in message
    assert message.endswith(
        "If they are right, the account may require a client certificate (REQUIRE X509): "
        "set ssl.cert and ssl.key"
    )


def test_a_client_certificate_the_server_does_not_trust(tls_mariadb):
    certificates = tls_mariadb.certificates
    files = {"cert": certificates.wrong_client_cert, "key": certificates.wrong_client_key}
    message = refusal(tls_mariadb, X509_USER, verify(tls_mariadb, "verify-identity", **files))
    # OpenSSL reports either the server's alert or the connection it closed, whichever it reads first.
    assert message.endswith(
        f"; the server ended the TLS handshake: it may not trust the client certificate in "
        f"ssl.cert ({certificates.wrong_client_cert}), which must be signed by a CA in the server's ssl_ca"
    )


# --- files that cannot be used -------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["ca", "cert", "key"])
def test_a_missing_file_is_named(tls_mariadb, tmp_path, setting):
    missing = tmp_path / f"missing-{setting}.pem"
    ssl = verify(tls_mariadb, "verify-identity", **client_certificate(tls_mariadb)) | {setting: str(missing)}
    message = refusal(tls_mariadb, X509_USER, ssl)
    prefix = "database 'app_db': preparing the connection failed: "
    assert message == f"{prefix}ssl.{setting}: the file {missing} does not exist"


def test_a_ca_file_that_holds_no_certificate_is_named(tls_mariadb, tmp_path):
    not_a_ca = tmp_path / "ca.pem"
    not_a_ca.write_text("not a certificate\n")
    message = refusal(tls_mariadb, SSL_USER, {"mode": "verify-ca", "ca": str(not_a_ca)})
    assert message.startswith(
        f"database 'app_db': preparing the connection failed: ssl.ca ({not_a_ca}) could not be loaded: "
    )


def test_a_key_that_does_not_belong_to_the_certificate_is_named(tls_mariadb):
    certificates = tls_mariadb.certificates
    files = {"cert": certificates.client_cert, "key": certificates.wrong_client_key}
    message = refusal(tls_mariadb, X509_USER, verify(tls_mariadb, "verify-identity", **files))
    assert message.startswith(
        f"database 'app_db': preparing the connection failed: ssl.cert ({certificates.client_cert}) "
        f"and ssl.key ({certificates.wrong_client_key}) could not be loaded: "
    )
    assert re.search("key values mismatch", message, re.IGNORECASE)


def test_a_key_without_a_certificate_is_refused(tls_mariadb):
    key = tls_mariadb.certificates.client_key
    message = refusal(tls_mariadb, X509_USER, {"mode": "required", "key": str(key)})
    assert message == (
        f"database 'app_db': preparing the connection failed: ssl.key ({key}) is set but ssl.cert is not: "
        "a client certificate needs both"
    )


# --- hints for what a local server cannot show ---------------------------------------------------


def test_hints_for_servers_without_tls_and_for_unrelated_errors():
    required = TlsConfig(mode="required")
    assert tls_error_hint("(2026) SSL is required but the server doesn't support it", required) == (
        "; the server does not offer TLS and ssl.mode is required: enable TLS on the server, "
        "or use ssl.mode preferred"
    )
    assert tls_error_hint(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired", required
    )
    no_ca = tls_error_hint(
        "certificate verify failed: unable to get local issuer certificate", TlsConfig(mode="verify-ca")
    )
    assert no_ca == (
        "; the server's certificate could not be verified against the system's trusted CAs: "
        "set ssl.ca to the CA certificate that signed it"
    )
    with_cert = TlsConfig(mode="required", cert=Path("c.pem"), key=Path("k.pem"))
    denied = "(1045) Access denied for user 'app'@'10.0.0.1' (using password: YES)"
    assert tls_error_hint(denied, with_cert, "APP_DB_PASSWORD") == (
        "; check the user name and its password (the variable APP_DB_PASSWORD)"
    )
    # A wrong password is the likely cause: it comes first, before any word about certificates.
    hint = tls_error_hint(denied, TlsConfig(mode="preferred"), "APP_DB_PASSWORD") or ""
    assert hint.index("password") < hint.index("certificate")
    assert tls_error_hint("(2003) Can't connect to MySQL server on 'db' (timed out)", required) is None
    assert tls_error_hint("(1064) You have an error in your SQL syntax", TlsConfig(mode="disabled")) is None
