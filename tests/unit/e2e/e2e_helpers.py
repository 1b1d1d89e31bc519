"""Shared helpers for the e2e unit tests (imported as unit.e2e.e2e_helpers)."""

from __future__ import annotations

from collections.abc import Iterator

from chatproto.e2e import primitives as P
from chatproto.e2e import ratchet


def flips(data: bytes, step: int = 1) -> Iterator[bytes]:
    """``data`` with one bit flipped, for every bit (or every ``step``-th byte's bits)."""
    for i in range(0, len(data), step):
        for bit in range(8):
            out = bytearray(data)
            out[i] ^= 1 << bit
            yield bytes(out)


def ratchet_pair(
    ad: bytes = bytes(range(128)),
) -> tuple[ratchet.RatchetState, ratchet.RatchetState]:
    """Alice (initiator) and Bob (responder) after a key agreement."""
    sk = P.random_bytes(32)
    bob_priv = P.x25519_generate()
    bob_pub = P.x25519_public(bob_priv)
    return ratchet.init_initiator(sk, bob_pub, ad), ratchet.init_responder(
        sk, bob_priv, bob_pub, ad
    )
