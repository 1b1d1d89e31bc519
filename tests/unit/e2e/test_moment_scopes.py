"""Moments' sender-key scopes (E2E.md 18.1): a Moment's or a comment's ciphertext opens only
under the scope it was sealed for, so a server cannot show a comment under another Moment, a
Moment as a conversation message, or one body twice."""

from __future__ import annotations

import pytest
from chatproto.e2e import moments as scopes
from chatproto.e2e import sender_keys as sk
from chatproto.errors import DecryptError, ReplayError
from chatproto.limits import MAX_ID


def _sealed(conv: int) -> tuple[bytes, sk.SenderKeyReceiverState]:
    key = sk.new_sender_key(conv)
    ct, _ = sk.encrypt(key, b"comment", sender_account=7, sender_device=3)
    return ct, sk.receiver_from_distribution(
        sk.distribution(key), sender_account=7, sender_device=3
    )


def test_scopes_are_never_conversation_ids_and_name_their_moment() -> None:
    assert scopes.comments_of(1) > MAX_ID and scopes.comments_of(MAX_ID) < scopes.MOMENTS
    assert scopes.is_moment_scope(scopes.MOMENTS) and scopes.is_moment_scope(scopes.comments_of(5))
    assert not scopes.is_moment_scope(MAX_ID)
    assert scopes.moment_of(scopes.comments_of(42)) == 42 and scopes.moment_of(scopes.MOMENTS) == 0
    with pytest.raises(ValueError, match="Moment"):
        scopes.comments_of(0)


def test_a_comment_opens_under_its_moment_only_and_only_once() -> None:
    ct, mine = _sealed(scopes.comments_of(5))
    plain, used = sk.decrypt(mine, ct)
    assert plain == b"comment"
    with pytest.raises(ReplayError):  # the same body again (under another comment id)
        sk.decrypt(used, ct)
    moved = sk.SenderKeyReceiverState(**{
        **{f: getattr(mine, f) for f in mine.__struct_fields__},
        "conv": scopes.comments_of(6),
    })  # fmt: skip
    with pytest.raises(DecryptError):  # the key under another Moment's scope: the binding fails
        sk.decrypt(moved, ct)
