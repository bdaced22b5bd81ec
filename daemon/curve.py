"""CurveZMQ keys for a daemon reachable off this computer: making them, and reading them back.

Apart from the server so that a client command with --server-key does not load the model code.
"""

from __future__ import annotations

import os
from pathlib import Path

import zmq
from zmq.utils import z85


def read_curve_key(path: Path) -> bytes:
    """A CurveZMQ key from a file `drumigen keys` wrote; ValueError, saying so, for anything else."""
    try:
        key = path.read_bytes().strip()
    except OSError as err:
        raise ValueError(f"cannot read the CurveZMQ key {path}: {err.strerror}") from None
    try:
        z85.decode(key)
        valid = len(key) == 40
    except (KeyError, ValueError, TypeError):
        valid = False
    if not valid:
        raise ValueError(f"{path} is not a CurveZMQ key (40 Z85 characters, as `drumigen keys` writes them)")
    return key


def make_keys(folder: Path, replace: bool = False) -> tuple[Path, Path]:
    """A CurveZMQ key pair as z85 text files: server.key (share it) and server.key_secret (keep
    it, readable by its owner only from the moment it exists). A pair already there is kept
    unless `replace`: a new one locks out every client given the old public key."""
    public_path, secret_path = folder / "server.key", folder / "server.key_secret"
    if not replace and (public_path.exists() or secret_path.exists()):
        raise ValueError(f"{Path(folder).resolve()} already holds a key pair, and its clients trust that public key; "
                         "--force makes a new one (give it to every client)")
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.curve_keypair()
    secret_path.unlink(missing_ok=True)
    with os.fdopen(os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(secret + b"\n")
    public_path.write_bytes(public + b"\n")
    return public_path, secret_path
