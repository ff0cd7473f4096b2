"""Central's Ed25519 private signing keys on disk: the first key file and a folder of rotated keys.

The first key lives at ``VAORA_SIGNING_KEY_FILE`` (created with mode 0600 on first use, as always). Every key made
by a rotation goes to the folder ``signing-keys/`` beside it (mode 0700), one PEM file per key, named by the
fingerprint of its public key (:func:`key_file_name`). Which key is active, retired or revoked is recorded in
the database (:mod:`central.core.keys`); the files only hold the private halves, so backups copy the file and the
folder (:mod:`central.backup`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols.codes import generate_signing_key, private_key_from_pem, private_key_to_pem, public_key_to_text

log = logging.getLogger(__name__)

KEY_DIR_NAME = "signing-keys"
"""The folder of rotated keys, beside ``VAORA_SIGNING_KEY_FILE``."""


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


def key_dir(key_file: Path) -> Path:
    """The folder of rotated keys that goes with the first key file ``key_file``."""
    return Path(key_file).parent / KEY_DIR_NAME


def key_file_name(public_key: str) -> str:
    """The file name of a rotated key: the first 16 hex digits of the SHA-256 of its public key text."""
    return hashlib.sha256(public_key.encode("ascii")).hexdigest()[:16] + ".pem"


def create_rotated_key(key_file: Path) -> tuple[Ed25519PrivateKey, Path]:
    """Make a new private key and store it in :func:`key_dir` (folder 0700, file 0600, never overwritten)."""
    folder = key_dir(key_file)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = generate_signing_key()
    path = folder / key_file_name(public_key_to_text(key.public_key()))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_key_to_pem(key))
        handle.flush()
        os.fsync(handle.fileno())
    log.info("signing key created path=%s", path)
    return key, path


def find_private_key(key_file: Path, public_key: str) -> Ed25519PrivateKey | None:
    """Return the private key whose public half is ``public_key``: from the rotated keys' folder, else the first
    key file; None when neither holds it."""
    for path in (key_dir(key_file) / key_file_name(public_key), Path(key_file)):
        if path.is_file():
            key = private_key_from_pem(path.read_bytes())
            if public_key_to_text(key.public_key()) == public_key:
                return key
    return None


def key_files(key_file: Path) -> list[Path]:
    """Every private key file: the first key file (when it exists) and the rotated keys, sorted."""
    first = [Path(key_file)] if Path(key_file).is_file() else []
    folder = key_dir(key_file)
    return first + (sorted(folder.glob("*.pem")) if folder.is_dir() else [])
