"""Central's Ed25519 signing key: read from a PEM file, created with mode 0600 on first use."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols.codes import generate_signing_key, private_key_from_pem, private_key_to_pem

log = logging.getLogger(__name__)


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Return the private key stored at ``path``; create it (mode 0600, parent dirs) when missing.

    Creation uses ``O_EXCL`` so two processes starting together cannot write two different keys.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = generate_signing_key()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(private_key_to_pem(key))
            log.info("signing key created path=%s", path)
            return key
    return private_key_from_pem(path.read_bytes())
