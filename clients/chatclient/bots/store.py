"""What a bot remembers across restarts, kept in its device's key store (one file, one lock).

Per conversation one record: the highest seq the bot has handled and the conversation's
``ctx.state``, written in one commit after each handled message — so a message is either
handled with its state change or not at all, and a restart skips what was handled. Separately,
the ids of recent mini-app invocations (per conversation and sender), so a retried invocation
is answered once. ``KeyStore.put`` commits before returning.
"""

from __future__ import annotations

from collections import OrderedDict

import msgspec

from chatclient.keystore import KeyStore

NS_CONV = "bots.conv"
NS_INVOCATIONS = "bots.invocations"


class _Record(msgspec.Struct, kw_only=True, omit_defaults=True):
    handled: int = 0
    state: msgspec.Raw = msgspec.Raw(b"{}")


_decode_record = msgspec.json.Decoder(_Record).decode
_encode = msgspec.json.encode


class BotStore:
    """The bot's persistent bookkeeping over a ``KeyStore``."""

    def __init__(self, keystore: KeyStore, invocation_memory: int = 10_000) -> None:
        self.ks = keystore
        self.invocation_memory = invocation_memory
        self._records: dict[int, _Record] = {}
        recent = sorted((int(ts or b"0"), key) for key, ts in keystore.items(NS_INVOCATIONS))
        self._invocations: OrderedDict[str, int] = OrderedDict((k, t) for t, k in recent)

    def _record(self, conv: int) -> _Record:
        rec = self._records.get(conv)
        if rec is None:
            raw = self.ks.get(NS_CONV, str(conv))
            rec = _decode_record(raw) if raw else _Record()
            self._records[conv] = rec
        return rec

    def handled(self, conv: int) -> int:
        """The highest seq of ``conv`` the bot has handled (every lower one is handled too)."""
        return self._record(conv).handled

    def state(self, conv: int) -> bytes:
        """The conversation's state as JSON bytes."""
        return bytes(self._record(conv).state)

    def commit(self, conv: int, seq: int, state: bytes | None) -> None:
        """Mark ``seq`` handled, with the new ``state`` (None: unchanged), in one write."""
        rec = self._record(conv)
        rec.handled = max(rec.handled, seq)
        if state is not None:
            rec.state = msgspec.Raw(state)
        self.ks.put(NS_CONV, str(conv), _encode(rec))

    # ------------------------------------------------------------------ invocations

    @staticmethod
    def _key(conv: int, sender: int, invocation_id: str) -> str:
        return f"{conv}:{sender}:{invocation_id}"

    def seen(self, conv: int, sender: int, invocation_id: str) -> bool:
        return self._key(conv, sender, invocation_id) in self._invocations

    def remember(self, conv: int, sender: int, invocation_id: str, now_ms: int) -> None:
        """Record an answered invocation; the oldest are forgotten beyond
        ``invocation_memory`` (retries come within seconds, not after thousands of others)."""
        key = self._key(conv, sender, invocation_id)
        self._invocations[key] = now_ms
        self._invocations.move_to_end(key)
        self.ks.put(NS_INVOCATIONS, key, str(now_ms).encode())
        while len(self._invocations) > self.invocation_memory:
            old, _ = self._invocations.popitem(last=False)
            self.ks.delete(NS_INVOCATIONS, old)
