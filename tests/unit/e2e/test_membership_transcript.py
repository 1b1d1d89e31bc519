"""The membership log rules (E2E.md 15) and the transcript checks (E2E.md 16), pure: each
rule of the table in 15.2 and each finding of 16, one case at a time."""

from __future__ import annotations

import pytest
from chatproto.e2e import membership as ML
from chatproto.e2e import transcript as T
from chatproto.e2e.primitives import SigningKey

KEY = SigningKey(bytes(range(32)))
OWNER, ADMIN, MEMBER, BOT, OTHER = 1, 2, 3, 9, 7


def chain(*changes: tuple[int, str, dict[str, object]]) -> ML.ChainState:
    """A group of OWNER, ADMIN (promoted), MEMBER and BOT, then ``changes`` (actor, op,
    fields), each signed and applied."""
    e = ML.genesis(
        "group",
        OWNER,
        1,
        [
            ML.Seat(account=OWNER, role="owner"),
            ML.Seat(account=ADMIN, role="member"),
            ML.Seat(account=MEMBER, role="member"),
            ML.Seat(account=BOT, role="member", access="addressed"),
        ],
    )
    body, sig = ML.sign_entry(e, KEY.seed)
    state = ML.apply(None, e, body, sig, 1)
    for actor, op, fields in ((OWNER, "role", {"account": ADMIN, "role": "admin"}), *changes):
        state = step(state, actor, op, **fields)
    return state


def step(state: ML.ChainState, actor: int, op: str, **fields: object) -> ML.ChainState:
    e = ML.Entry(
        group=state.group,
        epoch=state.epoch + 1,
        prev=state.head,
        actor=actor,
        device=1,
        op=op,  # type: ignore[arg-type]
        **fields,  # type: ignore[arg-type]
    )
    body, sig = ML.sign_entry(e, KEY.seed)
    return ML.apply(state, ML.decode_entry(body), body, sig, state.seq + 1)


def roles(state: ML.ChainState) -> dict[int, str]:
    return {m.account: m.role for m in state.members}


@pytest.mark.parametrize(
    ("actor", "op", "fields", "why"),
    [
        (MEMBER, "add", {"account": OTHER}, "owner or an admin adds"),
        (OTHER, "add", {"account": 8}, "not a member"),
        (OWNER, "add", {"account": MEMBER}, "not a member"),
        (OWNER, "add", {"account": OTHER, "access": "all"}, "joins as 'member'"),
        (ADMIN, "remove", {"account": OWNER}, "owner cannot be removed"),
        (OWNER, "remove", {"account": OWNER}, "another member"),
        (ADMIN, "role", {"account": MEMBER, "role": "admin"}, "only the owner changes roles"),
        (MEMBER, "access", {"account": BOT, "access": "all"}, "bot's access"),
        (OWNER, "access", {"account": MEMBER, "access": "all"}, "bot member"),
        (OWNER, "access", {"account": BOT, "access": "addressed"}, "malformed"),
    ],
)
def test_changes_the_actors_role_does_not_allow_are_refused(
    actor: int, op: str, fields: dict[str, object], why: str
) -> None:
    state = chain()
    with pytest.raises(ML.MembershipError, match=why):
        step(state, actor, op, **fields)


def test_an_admin_cannot_remove_another_admin_but_the_owner_can() -> None:
    state = chain(
        (OWNER, "add", {"account": OTHER}), (OWNER, "role", {"account": OTHER, "role": "admin"})
    )
    with pytest.raises(ML.MembershipError, match="only the owner removes an admin"):
        step(state, ADMIN, "remove", account=OTHER)
    assert OTHER not in step(state, OWNER, "remove", account=OTHER).accounts


def test_when_the_owner_leaves_the_earliest_admin_becomes_owner_else_the_earliest_member() -> None:
    assert roles(chain((OWNER, "leave", {})))[ADMIN] == "owner"
    no_admin = chain((OWNER, "role", {"account": ADMIN, "role": "member"}), (OWNER, "leave", {}))
    assert roles(no_admin)[ADMIN] == "owner"  # joined first (genesis, lowest account)


def test_member_at_follows_joins_and_departures_by_seq() -> None:
    state = chain((OWNER, "add", {"account": OTHER}))  # OTHER joins at seq 3
    gone = step(state, OWNER, "remove", account=OTHER)  # leaves at seq 4
    assert not ML.member_at(gone, OTHER, 2)
    assert ML.member_at(gone, OTHER, 3)
    assert not ML.member_at(gone, OTHER, 4)
    assert ML.member_at(gone, MEMBER, 100)


def test_a_replay_of_many_entries_is_the_same_state_as_one_by_one() -> None:
    state = chain()
    replay = ML.Replay(state)
    one_by_one = state
    for i in range(20):
        one_by_one = step(one_by_one, OWNER, "add", account=100 + i)
    entries = []
    s = state
    for i in range(20):
        e = ML.next_entry(s, OWNER, 1, "add", account=100 + i)
        body, sig = ML.sign_entry(e, KEY.seed)
        entries.append((e, body, sig, s.seq + 1))
        s = ML.apply(s, e, body, sig, s.seq + 1)
    for e, body, sig, seq in entries:
        replay.step(e, body, sig, seq)
    assert replay.state == one_by_one == s
    assert replay.count == len(s.members)


# --------------------------------------------------------------------------- transcript


def read(view: T.View, device: int, n: int, seq: int, *, prev: bytes | None = None, **kw: object):  # type: ignore[no-untyped-def]
    body = f"{device}:{n}".encode()
    t = T.Transcript(
        n=n,
        prev=T.message_hash(f"{device}:{n - 1}".encode())
        if prev is None and n > 1
        else (prev or b""),
        **kw,  # type: ignore[arg-type]
    )
    return T.observe(view, me=50, account=device * 10, device=device, seq=seq, body=body, t=t)


def test_a_chain_read_in_order_finds_nothing() -> None:
    view = T.View()
    for n in (1, 2, 3):
        view, found = read(view, 11, n, n)
        assert found == []


def test_reordered_and_forked_chains_are_found() -> None:
    view, _ = read(T.View(), 11, 1, 1)
    view, _ = read(view, 11, 2, 2)
    _, found = read(view, 11, 2, 3)
    assert [f.problem for f in found] == ["reordered"]
    _, found = read(view, 11, 3, 3, prev=T.message_hash(b"another message"))
    assert [f.problem for f in found] == ["forked_chain"]


def test_a_device_is_judged_only_from_the_first_message_read_after_joining() -> None:
    view, _ = read(T.View(), 11, 1, 1)
    body, t = b"11:5", T.Transcript(n=5, prev=T.message_hash(b"11:4"))
    _, found = T.observe(view, me=50, account=110, device=11, seq=9, body=body, t=t, joined=8)
    assert found == []  # the member was away (removed, added back at seq 8): not a drop
    _, found = T.observe(view, me=50, account=110, device=11, seq=9, body=body, t=t)
    assert [(f.problem, f.count) for f in found] == [("missing", 3)]


def test_claims_about_this_devices_own_messages_and_a_forked_log_are_found() -> None:
    view = T.sent(T.View(), b"my first")
    _, found = read(view, 11, 1, 1, seen=(T.Seen(500, 50, 2),))
    assert [(f.problem, f.count) for f in found] == [("own", 2)]
    _, found = T.observe(
        view,
        me=50,
        account=110,
        device=11,
        seq=2,
        body=b"x",
        t=T.Transcript(n=1, epoch=4, head=b"A" * 16),
        epoch=4,
        head=b"B" * 32,
    )
    assert [f.problem for f in found] == ["membership_fork"]


def test_outgoing_chains_this_devices_messages_and_reports_what_it_read() -> None:
    view, _ = read(T.View(), 11, 1, 1)
    t1 = T.outgoing(view, epoch=3, head=b"h" * 32)
    assert (t1.n, t1.prev, t1.epoch, t1.head) == (1, b"", 3, b"h" * 16)
    assert t1.seen == (T.Seen(110, 11, 1),)
    view = T.sent(view, b"sent body")
    assert T.outgoing(view).prev == T.message_hash(b"sent body")
    assert T.outgoing(view).n == 2
