"""The only module that imports ``cryptography.hazmat``: thin, typed wrappers over the primitives
chatd's end-to-end encryption uses (E2E.md section 2).

Keys cross the rest of the code as raw bytes (32-byte public keys, 32-byte private keys/seeds,
64-byte signatures, a 64-byte ML-KEM seed), so nothing else needs the library's types. Failures
map to ``chatproto.errors``: ``SignatureError``, ``InvalidKeyError``, ``DecryptError``,
``CryptoError``.
"""

from __future__ import annotations

import hmac as _hmac
import os
from typing import Final

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import hmac as _chmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from chatproto.errors import CryptoError, DecryptError, InvalidKeyError, SignatureError

try:  # ML-KEM needs cryptography >= 46 built against an OpenSSL/AWS-LC that has it.
    from cryptography.hazmat.primitives.asymmetric.mlkem import (
        MLKEM768PrivateKey,
        MLKEM768PublicKey,
    )

    _HAS_MLKEM = True
except ImportError:  # pragma: no cover - depends on the installed build
    _HAS_MLKEM = False

HAS_MLKEM: bool = _HAS_MLKEM
"""Whether this build can run ML-KEM-768. Without it PQXDH degrades to X3DH (E2E.md 4.4)."""

_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw
_RAW_PRIV = serialization.PrivateFormat.Raw
_NO_ENC = serialization.NoEncryption()

X25519_KEY_BYTES: Final = 32
ED25519_KEY_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
AES_KEY_BYTES: Final = 32
GCM_NONCE_BYTES: Final = 12
GCM_TAG_BYTES: Final = 16
MLKEM768_SEED_BYTES: Final = 64
MLKEM768_PUBLIC_KEY_BYTES: Final = 1184
MLKEM768_CIPHERTEXT_BYTES: Final = 1088
MLKEM_SHARED_SECRET_BYTES: Final = 32

# --- randomness ---------------------------------------------------------------------------------


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the operating system's CSPRNG."""
    return os.urandom(n)


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return _hmac.compare_digest(a, b)


# --- Ed25519 ------------------------------------------------------------------------------------


class SigningKey:
    """An Ed25519 private key. ``seed`` is its 32 raw bytes (what a key store keeps)."""

    __slots__ = ("_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != ED25519_KEY_BYTES:
            raise InvalidKeyError("an Ed25519 seed is 32 bytes")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key: bytes = self._key.public_key().public_bytes(_RAW, _RAW_PUB)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate().private_bytes(_RAW, _RAW_PRIV, _NO_ENC))

    @property
    def seed(self) -> bytes:
        return self._key.private_bytes(_RAW, _RAW_PRIV, _NO_ENC)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


def verify(public_key: bytes, signature: bytes, message: bytes) -> None:
    """Raise ``SignatureError`` unless ``signature`` is ``public_key``'s over ``message``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise SignatureError("signature does not verify") from exc


def is_valid_public_key(public_key: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        return False
    return True


# --- X25519 -------------------------------------------------------------------------------------

# Public keys of small order (and their non-canonical encodings), as listed by libsodium: a DH
# with any of them yields a value an attacker knows. Compared with bit 255 cleared (X25519
# ignores it).
_SMALL_ORDER: Final = frozenset(
    bytes.fromhex(h)
    for h in (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    )
)


def x25519_generate() -> bytes:
    """A new X25519 private key (32 random bytes; clamping happens inside the DH)."""
    return X25519PrivateKey.generate().private_bytes(_RAW, _RAW_PRIV, _NO_ENC)


def x25519_public(private_key: bytes) -> bytes:
    """The 32-byte public key of an X25519 private key."""
    if len(private_key) != X25519_KEY_BYTES:
        raise InvalidKeyError("an X25519 private key is 32 bytes")
    return (
        X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes(_RAW, _RAW_PUB)
    )


def is_small_order(public_key: bytes) -> bool:
    """Whether ``public_key`` is on the small-order blocklist (bit 255 ignored)."""
    return public_key[:31] + bytes([public_key[31] & 0x7F]) in _SMALL_ORDER


_P25519: Final = 2**255 - 19


def check_x25519_public(public_key: bytes) -> None:
    """Raise ``InvalidKeyError`` unless ``public_key`` is 32 bytes, canonical (bit 255 clear and
    the value below 2^255 - 19, so no two encodings name one key) and not of small order."""
    if len(public_key) != X25519_KEY_BYTES:
        raise InvalidKeyError("an X25519 public key is 32 bytes")
    if is_small_order(public_key):
        raise InvalidKeyError("X25519 public key of small order")
    if int.from_bytes(public_key, "little") >= _P25519:
        raise InvalidKeyError("non-canonical X25519 public key")


def x25519(private_key: bytes, public_key: bytes) -> bytes:
    """X25519(private, public): the 32-byte shared secret.

    Refuses (``InvalidKeyError``) a public key of the wrong length, one on the small-order
    blocklist, and any key for which the result is all zeros (the library raises then)."""
    check_x25519_public(public_key)
    if len(private_key) != X25519_KEY_BYTES:
        raise InvalidKeyError("an X25519 private key is 32 bytes")
    try:
        return X25519PrivateKey.from_private_bytes(private_key).exchange(
            X25519PublicKey.from_public_bytes(public_key)
        )
    except ValueError as exc:
        raise InvalidKeyError("X25519 with this public key gives an all-zero secret") from exc


# --- hashes, MAC, KDF, AEAD ---------------------------------------------------------------------


def sha256(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize()


def sha512(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SHA512())
    h.update(data)
    return h.finalize()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    h = _chmac.HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


def hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869). An empty ``salt`` means 32 zero bytes, as in the RFC."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or bytes(32), info=info).derive(
        ikm
    )


def scrypt(passphrase: bytes, salt: bytes, *, n: int, r: int, p: int, length: int = 32) -> bytes:
    """scrypt (RFC 7914): a memory-hard key from a passphrase (the key stores' at-rest key)."""
    try:
        return Scrypt(salt=salt, length=length, n=n, r=r, p=p).derive(passphrase)
    except ValueError as exc:
        raise CryptoError(f"bad scrypt parameters: {exc}") from exc


def aes_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM: ciphertext || 16-byte tag."""
    if len(key) != AES_KEY_BYTES or len(nonce) != GCM_NONCE_BYTES:
        raise InvalidKeyError("AES-256-GCM takes a 32-byte key and a 12-byte nonce")
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def aes_gcm_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM open; ``DecryptError`` if the tag does not verify."""
    if len(key) != AES_KEY_BYTES or len(nonce) != GCM_NONCE_BYTES:
        raise InvalidKeyError("AES-256-GCM takes a 32-byte key and a 12-byte nonce")
    if len(ciphertext) < GCM_TAG_BYTES:
        raise DecryptError("ciphertext shorter than the GCM tag")
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag as exc:
        raise DecryptError("ciphertext does not authenticate") from exc


# --- ML-KEM-768 ---------------------------------------------------------------------------------


def _need_mlkem() -> None:
    if not HAS_MLKEM:
        raise CryptoError("ML-KEM-768 is not available in this build of cryptography")


def mlkem768_generate() -> bytes:
    """A new ML-KEM-768 private key as its 64-byte seed (d || z, FIPS 203)."""
    _need_mlkem()
    return random_bytes(MLKEM768_SEED_BYTES)


def mlkem768_public(seed: bytes) -> bytes:
    """The 1184-byte encapsulation key of the private key with this 64-byte seed."""
    _need_mlkem()
    if len(seed) != MLKEM768_SEED_BYTES:
        raise InvalidKeyError("an ML-KEM-768 seed is 64 bytes")
    return MLKEM768PrivateKey.from_seed_bytes(seed).public_key().public_bytes_raw()


def mlkem768_encapsulate(public_key: bytes) -> tuple[bytes, bytes]:
    """``(ciphertext 1088 bytes, shared secret 32 bytes)`` for ``public_key`` (random inside:
    the library takes no encapsulation randomness)."""
    _need_mlkem()
    if len(public_key) != MLKEM768_PUBLIC_KEY_BYTES:
        raise InvalidKeyError("an ML-KEM-768 public key is 1184 bytes")
    try:
        key = MLKEM768PublicKey.from_public_bytes(public_key)
    except ValueError as exc:
        raise InvalidKeyError("invalid ML-KEM-768 public key") from exc
    shared, ciphertext = key.encapsulate()
    return ciphertext, shared


def mlkem768_decapsulate(seed: bytes, ciphertext: bytes) -> bytes:
    """The 32-byte shared secret of ``ciphertext`` (FIPS 203 implicit rejection: a tampered
    ciphertext gives an unrelated secret, not an error)."""
    _need_mlkem()
    if len(seed) != MLKEM768_SEED_BYTES:
        raise InvalidKeyError("an ML-KEM-768 seed is 64 bytes")
    if len(ciphertext) != MLKEM768_CIPHERTEXT_BYTES:
        raise DecryptError("an ML-KEM-768 ciphertext is 1088 bytes")
    try:
        return MLKEM768PrivateKey.from_seed_bytes(seed).decapsulate(ciphertext)
    except ValueError as exc:
        raise DecryptError("invalid ML-KEM-768 ciphertext") from exc


class Sha256:
    """Incremental SHA-256, for digests of data too large to hold at once (attachments)."""

    __slots__ = ("_h",)

    def __init__(self) -> None:
        self._h = hashes.Hash(hashes.SHA256())

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        """The digest of everything fed so far (the hasher stays usable)."""
        return self._h.copy().finalize()
