"""`ssl.mode` (the `mysql` client's `--ssl-mode` values) → PyMySQL connection arguments."""

from __future__ import annotations

import ssl
from typing import Any

from reverse_etl_assets.config.models import TlsConfig


def pymysql_tls_args(tls: TlsConfig) -> dict[str, Any]:
    if tls.mode == "disabled":
        return {"ssl_disabled": True}
    if tls.mode == "preferred":
        return {}  # PyMySQL uses TLS when the server offers it, without verifying it
    context = ssl.create_default_context(cafile=str(tls.ca) if tls.ca else None)
    if tls.mode == "required":
        # Encrypted but not authenticated, like the mysql client's REQUIRED mode.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.check_hostname = tls.mode == "verify-identity"
        context.verify_mode = ssl.CERT_REQUIRED
    if tls.cert:
        context.load_cert_chain(str(tls.cert), str(tls.key) if tls.key else None)
    return {"ssl": context}
