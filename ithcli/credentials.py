"""Clinician credentials: who is programming and who double-checked, proven by a key, not typed.

Each clinician holds their own Ed25519 private key in a file only they can read
(`ithcli credential new`), optionally protected by their own passphrase. The clinic's
policy file (clinic_policy.py) lists every clinician with their public key; a signature
made with a key names the clinician the policy lists for it, so nobody can sign as
another clinician without that clinician's file (and passphrase). docs/clinical.md,
"Orders and the double check", says how a clinic sets this up.
"""
from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import AuthError, UsageError
from .protected_files import OTHERS_READ, read_protected

PUBLIC_PREFIX = "ed25519:"


@dataclass(frozen=True)
class Credential:
    """A clinician's private key, loaded from their credential file."""

    path: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> str:
        return public_text(self.private_key.public_key())

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private_key.sign(message)).decode()


def public_text(key: Ed25519PublicKey) -> str:
    """The public key as the clinic policy lists it: "ed25519:" and its 32 bytes in base64."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_PREFIX + base64.b64encode(raw).decode()


def parse_public(text: object, where: str) -> Ed25519PublicKey:
    if not isinstance(text, str) or not text.startswith(PUBLIC_PREFIX):
        raise UsageError(f"{where}: public_key must be \"{PUBLIC_PREFIX}BASE64\" (from `ithcli credential new`)")
    try:
        raw = base64.b64decode(text[len(PUBLIC_PREFIX):], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise UsageError(f"{where}: public_key is not an Ed25519 public key") from None


def signature_valid(public_key: str, signature: object, message: bytes) -> bool:
    if not isinstance(signature, str):
        return False
    try:
        key = parse_public(public_key, "public key")
        key.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError, UsageError):
        return False
    return True


def new_credential(path: Path, passphrase: bytes | None = None) -> Credential:
    """Create a credential file readable by its owner only (never overwrites one)."""
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise UsageError(f"credential {path} already exists: refused (a clinician's key is never replaced "
                         "silently; remove it first if you mean to)") from None
    except OSError as exc:
        raise UsageError(f"credential {path}: cannot create: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    return Credential(str(path), key)


def is_encrypted(path: str | os.PathLike) -> bool:
    return b"ENCRYPTED" in _read_private(Path(path))[:64]


def load_credential(path: str | os.PathLike, passphrase: bytes | None = None) -> Credential:
    """A clinician's credential file, refused unless only its owner can read it."""
    pem = _read_private(Path(path))
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except TypeError:
        if passphrase is None:
            raise AuthError(f"credential {path} is protected by a passphrase: give it at the terminal") from None
        raise AuthError(f"credential {path} is not protected by a passphrase, but one was given") from None
    except ValueError:
        raise AuthError(f"credential {path}: wrong passphrase, or not an ithcli credential") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuthError(f"credential {path}: not an Ed25519 key (make one with `ithcli credential new`)")
    return Credential(str(path), key)


def read_credential(path: str | os.PathLike, ask_passphrase: Callable[[str], bytes] | None = None) -> Credential:
    """load_credential, asking for the passphrase when the file has one (and there is someone to ask)."""
    if not is_encrypted(path):
        return load_credential(path)
    if ask_passphrase is None:
        raise AuthError(f"credential {path} is protected by a passphrase, and nobody can be asked for it here "
                        "(run at a terminal)")
    return load_credential(path, ask_passphrase(str(path)))


def _read_private(path: Path) -> bytes:
    return read_protected(path, "credential", forbidden=OTHERS_READ, refusal="is readable by group or others "
                          "(mode {mode}): refused; chmod 600 it and consider it compromised")
