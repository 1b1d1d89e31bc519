"""End-to-end encryption cost per message, on the client (the server does no crypto).

Measures, single-threaded on one core, the CPU time to encrypt and decrypt one message:
* pairwise (to-device): Double Ratchet encrypt + decrypt of a steady session (and the one-off
  PQXDH session start, separately);
* sender key (conversation messages): one encrypt by the sender, one decrypt per receiving
  device, with the payload padding of a short text.

    .venv/bin/python loadtest/bench_e2e.py [--n 5000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from chatproto import kinds
from chatproto.e2e import pairwise, payload, primitives, sender_keys, x3dh


def per_op(fn: object, n: int) -> float:
    """Microseconds of process CPU per call of ``fn()``."""
    t0 = time.process_time()
    for _ in range(n):
        fn()  # type: ignore[operator]
    return (time.process_time() - t0) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--json")
    a = p.parse_args()
    os.sched_setaffinity(0, {0})
    n = a.n
    _, body = kinds.encode_content(kinds.Text(text="hello, this is a typical short chat message"))
    plaintext = payload.encode_payload("text", body)

    # Pairwise: alice starts a session with bob's bundle; then steady ratchet messages.
    alice = x3dh.new_device(primitives.SigningKey.generate().seed, one_time=n + 10)
    bob = x3dh.new_device(primitives.SigningKey.generate().seed, one_time=n + 10)
    bundles = [x3dh.bundle_from_upload(x3dh.upload_material(bob), i) for i in range(n)]
    it = iter(bundles)
    t_start = per_op(lambda: pairwise.start_session(alice.identity, next(it)), min(n, 500))
    session = pairwise.start_session(alice.identity, bundles[0])
    first, session = pairwise.encrypt_to_device(session, plaintext)
    got = pairwise.decrypt_from_device(None, bob, first)
    bob_session = got.session
    msgs: list[bytes] = []

    def enc_pairwise() -> None:
        nonlocal session
        m, session = pairwise.encrypt_to_device(session, plaintext)
        msgs.append(m)

    t_pw_enc = per_op(enc_pairwise, n)
    it2 = iter(msgs)

    def dec_pairwise() -> None:
        nonlocal bob_session
        r = pairwise.decrypt_from_device(bob_session, bob, next(it2))
        bob_session = r.session

    t_pw_dec = per_op(dec_pairwise, n)

    # Sender keys.
    sk = sender_keys.new_sender_key(1)
    receiver = sender_keys.receiver_from_distribution(
        sender_keys.distribution(sk), sender_account=1, sender_device=1
    )
    cts: list[bytes] = []

    def enc_sk() -> None:
        nonlocal sk
        c, sk = sender_keys.encrypt(sk, plaintext, sender_account=1, sender_device=1)
        cts.append(c)

    t_sk_enc = per_op(enc_sk, n)
    it3 = iter(cts)

    def dec_sk() -> None:
        nonlocal receiver
        pt, receiver = sender_keys.decrypt(receiver, next(it3))
        payload.decode_payload(pt)

    t_sk_dec = per_op(dec_sk, n)
    res = {
        "mlkem": primitives.HAS_MLKEM,
        "plaintext_bytes": len(body),
        "padded_bytes": len(plaintext),
        "sender_key_message_bytes": len(cts[0]),
        "pqxdh_session_start_us": round(t_start, 1),
        "pairwise_encrypt_us": round(t_pw_enc, 1),
        "pairwise_decrypt_us": round(t_pw_dec, 1),
        "sender_key_encrypt_us": round(t_sk_enc, 1),
        "sender_key_decrypt_us": round(t_sk_dec, 1),
    }
    for k, v in res.items():
        print(f"{k:28} {v}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
