"""TLS for the server mode (issue 6): ``--tls-cert`` and ``--tls-key`` become an ``ssl.SSLContext``."""

from __future__ import annotations

import ssl
from pathlib import Path


class TLSSetupError(Exception):
    """The certificate or key cannot be used; ``str(exc)`` says which and why (never the key's content)."""


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context (TLS 1.2 or newer) with the PEM certificate chain ``cert`` and private key ``key``."""
    for what, path in (("certificate", cert), ("private key", key)):
        if not path.is_file():
            raise TLSSetupError(f"The TLS {what} file {path} does not exist.")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key), password=_no_password)
    except ssl.SSLError as exc:
        raise TLSSetupError(
            f"The TLS certificate {cert} and key {key} cannot be used together ({exc.reason or exc}); "
            "both must be PEM files, the key unencrypted and belonging to the certificate."
        ) from None
    except OSError as exc:
        raise TLSSetupError(f"Cannot read the TLS certificate or key ({exc.strerror or exc}).") from None
    return context


def _no_password() -> bytes:
    """An encrypted key fails to load instead of prompting on a terminal nobody watches."""
    return b""
