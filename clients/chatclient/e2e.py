"""End-to-end encryption for one device: the SDK side of protocol/E2E.md.

The server only relays: it stores public keys, signed device lists and opaque ciphertexts. This
module keeps everything secret in the device's ``KeyStore`` (committed before use), and turns
plaintext kinds into ``e2e`` message bodies and back:

* Sending to a conversation: one sender key per (conversation, this device), shared with every
  member device over pairwise sessions (PQXDH + Double Ratchet, as ``to_device`` messages), then
  each message is encrypted ONCE with it. The key is rotated when the set of recipient devices
  changes (a removed member cannot read what follows), after ``ROTATE_AFTER`` messages or
  ``ROTATE_SECONDS``.
* Bots whose access is ``addressed`` (E2E.md 7.1): in a conversation with such a bot, a second
  sender key (the *addressed* key) goes to every member device, those bots' devices included,
  and encrypts the messages addressed to such a bot; the main key goes to everyone else only,
  so such a bot never holds a key to a message not addressed to one of them. A main key whose
  holders include a device that may no longer have it (a bot that went ``addressed``, a member
  that left) is replaced before the next message.
* Receiving: ``to_device`` items are decrypted by a worker task, which checks that the sending
  device is in its account's signed device list before storing the sender key it carries; a
  conversation message is decrypted with the stored sender key (replays refused).
* Trust: an account's master key is pinned on first use; every device list must be signed by
  it with a growing version. A device the list does not contain gets nothing and is trusted for
  nothing, whatever the server says.
* The master key itself moves to another device of the account only when the user asks for it
  (``transfer_master_key``), over a pairwise session, and is accepted only from a listed device
  of the same account and only if it is the pinned master key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec
from chatproto import frames as F
from chatproto import franking, kinds
from chatproto.e2e import devicelist, pairwise, payload, safety, sender_keys, transcript, x3dh
from chatproto.e2e.primitives import SigningKey, constant_time_equal
from chatproto.errors import (
    ChatProtoError,
    CryptoError,
    DecryptError,
    ProtocolError,
    UntrustedKeyError,
)

if TYPE_CHECKING:
    from chatclient.keystore import KeyStore

log = logging.getLogger(__name__)

ROTATE_AFTER: Final = 1000
"""Messages after which a sender key is replaced."""
ROTATE_SECONDS: Final = 7 * 24 * 3600
MAX_ARCHIVED: Final = 4
"""Replaced pairwise sessions kept per remote device (see ``_decrypt_pairwise``)."""
MAX_BASE_KEYS: Final = 4000
"""Base keys of pairwise sessions remembered after their session is gone: a PREKEY message
naming one is a replay, refused instead of running X3DH again (E2E.md 6)."""
ONE_TIME_TARGET: Final = 100
"""One-time prekeys a device keeps published; refilled below half of it."""
NO_LIST_WAIT: Final = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
"""Pauses while waiting for a member's first device list (a fresh account publishes it right
after registering) before its devices are left out of a message."""
ADDRESSED: Final = ":addressed"

_enc = msgspec.msgpack.Encoder()

# Key store namespaces.
NS_DEVICE = "e2e.device"  # "prekeys" -> PreKeyState, "master" -> master seed
NS_SESSION = "e2e.session"  # "{account}:{device}" -> pairwise.Session (+ ".archive")
NS_OUT = "e2e.out"  # "{conv}" -> _Outbound (main key), "{conv}:addressed" (E2E.md 7.1)
NS_IN = "e2e.in"  # "{conv}:{account}:{device}:{key_id}" -> SenderKeyReceiverState
NS_TRUST = "e2e.trust"  # "{account}" -> _Trust
NS_APPROVED = "e2e.approved"  # "{login key hex}" -> b"\x01": device keys the user approved
NS_PLAIN = "e2e.plain"  # "{conv}:{seq}" -> _Plain (decrypted history, for fetch)
NS_TRANSCRIPT = "e2e.transcript"  # "{conv}" -> transcript.View (E2E.md 16)


class _Outbound(msgspec.Struct, kw_only=True):
    """This device's sender key for one conversation and who has it."""

    key: sender_keys.SenderKeyState
    holders: list[tuple[int, int]] = []
    """(account, device) given this key (sorted). Device ids alone are not enough: another
    account's signed list may name the same id, and must not keep a removed device's key."""
    recipients: list[int] = []
    """Before ``holders``: device ids alone. A key stored with these is replaced."""
    created: float
    sent: int = 0


class _Trust(msgspec.Struct, kw_only=True):
    master_key: bytes
    version: int
    devices: list[devicelist.DeviceEntry]
    verified: bool = False
    changed: bool = False
    """The master key changed after it was verified: sending is blocked until acknowledged."""


class _Plain(msgspec.Struct, array_like=True):
    kind: str
    body: bytes
    reply_to: int = 0
    fk: bytes = b""
    """The message's franking key (E2E.md 17): what a report reveals; empty: not franked."""


@dataclass(frozen=True, slots=True)
class Decrypted:
    kind: str
    body: bytes
    reply_to: int = 0
    transcript: transcript.Transcript | None = None
    """What the sender had seen (E2E.md 16); None for a cached (already read) message."""
    gap: int = 0
    """Iterations of this sender key skipped since the last message read under it."""


@dataclass(frozen=True, slots=True)
class Received:
    """What one to-device item stored."""

    conv: int | None = None
    """A sender key for this conversation."""
    master_key: bool = False
    """This account's master key (a transfer from another of its devices)."""


class BadCommitment(DecryptError):
    """A franked message whose franking key does not open the commitment delivered with it
    (E2E.md 17): shown as undecryptable, never as the sender's words."""


class MissingKey(CryptoError):
    """No sender key yet for this message: it may still be on its way as a to-device item."""


class UntrustedDevice(CryptoError):
    """A device or key the account's signed device list does not vouch for."""


class NoDeviceList(CryptoError):
    """The account has not published a device list (yet): it has no device to encrypt to."""


Request = Callable[[Any, type[Any]], Awaitable[Any]]
"""The client's ``_call``: send a request frame, return the typed answer or raise."""
Warn = Callable[[int, str], Awaitable[None]]
"""How a safety event reaches the application: ``(account, reason)`` (the client emits a
``SecurityWarning``)."""


def session_name(account: int, device: int) -> str:
    """The key of the pairwise session with ``device`` of ``account``: sessions are per
    (account, device), and used only while their keys are the ones the list names."""
    return f"{account}:{device}"


def sender_key_name(conv: int, account: int, device: int, key_id: int) -> str:
    """The key (in ``NS_IN``) of the sender key ``key_id`` that ``device`` of ``account`` uses
    in ``conv`` (a conversation, or a Moments scope)."""
    return f"{conv}:{account}:{device}:{key_id}"


def _load(ks: KeyStore, ns: str, key: str, typ: type[Any]) -> Any:
    raw = ks.get(ns, key)
    return None if raw is None else msgspec.msgpack.decode(raw, type=typ)


def _save(ks: KeyStore, ns: str, key: str, value: Any) -> None:
    ks.put(ns, key, _enc.encode(value))


class E2E:
    """One device's end-to-end state and operations. Built and driven by ``Client``."""

    def __init__(
        self,
        ks: KeyStore,
        request: Request,
        next_id: Callable[[], int],
        warn: Warn | None = None,
    ) -> None:
        self.ks = ks
        self._call = request
        self._id = next_id
        self._on_warn = warn
        self._conv_locks: dict[int, asyncio.Lock] = {}
        self._stale: set[int] = set()
        """Accounts whose device list changed since we last fetched it."""
        self._given_up: set[tuple[int, int, int]] = set()
        """(conv, device, key id) whose key waited in vain: later messages fail fast."""

    # ------------------------------------------------------------------ own device

    async def _warn(self, account: int, reason: str) -> None:
        log.warning("account %s: %s", account, reason)
        if self._on_warn is not None:
            await self._on_warn(account, reason)

    @property
    def prekeys(self) -> x3dh.PreKeyState | None:
        state: x3dh.PreKeyState | None = _load(self.ks, NS_DEVICE, "prekeys", x3dh.PreKeyState)
        return state

    @property
    def identity(self) -> x3dh.IdentityKeyPair:
        state = self.prekeys
        if state is None:
            raise CryptoError("this device has no end-to-end keys yet")
        return state.identity

    @property
    def master_key(self) -> bytes | None:
        seed = self.ks.get(NS_DEVICE, "master")
        return None if seed is None else SigningKey(seed).public_key

    async def setup(self, *, first_device: bool) -> None:
        """After login: publish this device's keys (once) and keep one-time prekeys stocked;
        on an account's first device, make the master key and sign the first device list."""
        state = self.prekeys
        if state is None:
            state = x3dh.new_device(self.ks.seed, one_time=ONE_TIME_TARGET)
            _save(self.ks, NS_DEVICE, "prekeys", state)
            self.ks.put(NS_DEVICE, "spk_at", str(time.time()).encode())
            up = x3dh.upload_material(state)
            await self._upload(state, prekeys=up, one_time=up.one_time)
        else:
            await self.rotate_prekeys_if_due()
            await self.refill()
        if first_device and self.ks.get(NS_DEVICE, "master") is None:
            self.ks.put(NS_DEVICE, "master", SigningKey.generate().seed)
            await self.publish_device_list([])

    async def rotate_prekeys_if_due(self, now: float | None = None) -> bool:
        """Replace the signed (and ML-KEM) prekey once it is ``ROTATE_SECONDS`` old; the
        previous one keeps opening sessions started from an older bundle."""
        now = time.time() if now is None else now
        since = float(self.ks.get(NS_DEVICE, "spk_at") or b"0")
        state = self.prekeys
        if state is None or now - since < ROTATE_SECONDS:
            return False
        state = x3dh.rotate_signed_prekeys(state)
        _save(self.ks, NS_DEVICE, "prekeys", state)
        await self._upload(state, prekeys=x3dh.upload_material(state))
        self.ks.put(NS_DEVICE, "spk_at", str(now).encode())
        return True

    async def refill(self) -> int:
        """Top the published one-time prekeys back up when fewer than half remain."""
        state = self.prekeys
        assert state is not None
        count = await self._upload(state)  # uploads nothing new: answers the pool's size
        if count >= ONE_TIME_TARGET // 2:
            return count
        # Read again after the await: a message may have consumed a one-time prekey meanwhile,
        # and saving the state read before would bring that (used, private) prekey back.
        state = self.prekeys
        assert state is not None
        state, new = x3dh.add_one_time_prekeys(state, ONE_TIME_TARGET - count)
        _save(self.ks, NS_DEVICE, "prekeys", state)
        return await self._upload(state, one_time=new)

    async def _upload(
        self,
        state: x3dh.PreKeyState,
        *,
        prekeys: x3dh.UploadMaterial | None = None,
        one_time: Sequence[x3dh.OneTimePrekey] = (),
    ) -> int:
        """One ``upload_keys``: the identity, plus the signed prekeys of ``prekeys`` and the
        ``one_time`` prekeys when given. Returns the server's count of one-time prekeys."""
        ident = state.identity
        answer: F.KeyCount = await self._call(
            F.UploadKeys(
                id=self._id(),
                identity_key=ident.identity_key,
                identity_sig=ident.identity_sig,
                signed_prekey=None if prekeys is None else _wire_spk(prekeys.signed_prekey),
                pq_prekey=None
                if prekeys is None or prekeys.pq_prekey is None
                else _wire_spk(prekeys.pq_prekey),
                one_time=[F.OneTimePrekey(kid=k.kid, key=k.key) for k in one_time],
            ),
            F.KeyCount,
        )
        return answer.one_time

    def approve(self, device_key: bytes) -> None:
        """The user approved the new device whose login key is ``device_key`` on this device
        (``Client.approve_device``): the master key will list a device only with a key approved
        so (here, or on another listed device of the account that sent the approval)."""
        self.ks.put(NS_APPROVED, device_key.hex(), b"\x01")

    def approved(self, device_key: bytes) -> bool:
        return self.ks.get(NS_APPROVED, device_key.hex()) is not None

    async def device_login_key(self, device: int) -> bytes:
        """The login key the server says ``device`` of this account has (for the user to compare
        with what that device shows before approving it)."""
        got: F.Bundles = await self._call(
            F.ClaimKeys(id=self._id(), account=self.ks.account), F.Bundles
        )
        for b in got.bundles:
            if b.device == device:
                return b.signing_key
        raise CryptoError(f"device {device} of your account has published no keys")

    async def publish_device_list(
        self, extra_devices: Sequence[int], remove: Sequence[int] = ()
    ) -> int:
        """Sign and publish the account's device list: this device, the devices already on
        the list, and ``extra_devices`` (the user approved them), without ``remove``. Needs the
        master key.

        The list starts from the newest one signed by the master key (the one this device
        pinned, or a newer one on the server that verifies): its version is the signed one,
        never the frame's. An extra device is listed only with a login key the user approved
        (``approve``) and the identity and prekeys that key signed: the server chooses
        neither the device's keys nor whether it has a PQ prekey. ``UntrustedDevice``
        otherwise, and nothing is published."""
        seed = self.ks.get(NS_DEVICE, "master")
        if seed is None:
            raise CryptoError("only the device holding the account's master key signs its list")
        master = SigningKey(seed)
        own = self.ks.account
        pinned = self.trust(own)
        base: list[devicelist.DeviceEntry] = []
        version = 0
        if pinned is not None and constant_time_equal(pinned.master_key, master.public_key):
            base, version = list(pinned.devices), pinned.version
        current: F.DeviceList = await self._call(
            F.GetDeviceList(id=self._id(), account=own), F.DeviceList
        )
        if current.version:
            try:
                stored = devicelist.verify_device_list(
                    current.body, current.sig, master.public_key, account=own
                )
            except ChatProtoError as exc:  # a forgery: start from what this device trusts
                await self._warn(own, f"the server's copy of your device list is refused: {exc}")
            else:
                if stored.version > version:
                    base, version = list(stored.devices), stored.version
        entries = {d.device: d for d in base}
        state = self.prekeys
        assert state is not None
        entries[self.ks.device] = devicelist.DeviceEntry(
            device=self.ks.device,
            signing_key=state.identity.signing_key,
            identity_key=state.identity.identity_key,
            pq=state.pq_prekey is not None,
        )
        for device in remove:
            if device == self.ks.device:
                raise CryptoError("a device cannot remove itself from the list")
            entries.pop(device, None)
        if extra_devices:
            bundles: F.Bundles = await self._call(
                F.ClaimKeys(id=self._id(), account=own), F.Bundles
            )
            found = {b.device: b for b in bundles.bundles}
            for device in extra_devices:
                entries[device] = self._approved_entry(device, found.get(device))
        if version >= devicelist.MAX_VERSION:
            raise CryptoError("the device list reached its last version")
        version += 1
        dl = devicelist.DeviceList(
            account=own,
            version=version,
            master_key=master.public_key,
            devices=tuple(entries.values()),
        )
        body, sig = devicelist.sign_device_list(dl, seed)
        await self._call(
            F.PutDeviceList(
                id=self._id(), body=body, sig=sig, master_key=master.public_key, version=version
            ),
            F.Ok,
        )
        _save(
            self.ks,
            NS_TRUST,
            str(own),
            _Trust(
                master_key=master.public_key,
                version=version,
                devices=list(dl.devices),
                verified=True,
            ),
        )
        for device in remove:
            self._drop_sessions(own, device)
        return version

    def _approved_entry(self, device: int, b: F.Bundle | None) -> devicelist.DeviceEntry:
        """The list entry of ``device`` from its bundle, if the user approved its key."""
        if b is None or b.signed_prekey is None:
            raise CryptoError(f"device {device} has published no keys yet")
        if not self.approved(b.signing_key):
            raise UntrustedDevice(
                f"device {device} has key {b.signing_key.hex()[:16]}…, which you did not approve"
                " (approve the new device's key on one of your devices first)"
            )
        try:
            x3dh.verify_bundle(_bundle(b))
        except UntrustedKeyError as exc:
            raise UntrustedDevice(f"device {device}: {exc.message}") from exc
        return devicelist.DeviceEntry(
            device=device,
            signing_key=b.signing_key,
            identity_key=b.identity_key,
            pq=b.pq_prekey is not None,
        )

    async def request_device_change(
        self, op: Literal["approve", "remove"], device_key: bytes, device: int = 0
    ) -> list[int]:
        """Send the user's approval of a new device's key, or removal of a listed device, to
        the account's other listed devices (E2E.md 3.2): the one holding the master key applies
        it. Returns the devices it was sent to."""
        own = self.ks.account
        listed = await self.devices(own, refresh=True)
        if op == "remove":
            entry = next((d for d in listed if d.device == device), None)
            if entry is None:
                raise UntrustedDevice(f"device {device} is not on your device list")
            device_key = entry.signing_key
        content = payload.encode_to_device(
            payload.DeviceChange(account=own, op=op, device_key=device_key, device=device)
        )
        others = [d.device for d in listed if d.device != self.ks.device]
        return await self._send_pairwise(own, others, content)

    async def remove_device(self, device: int) -> None:
        """The user removes ``device`` from the account: re-signed without it here if this
        device holds the master key, else asked of the device that does. Every sender key it
        held is replaced before the next message (section 7 rotation: it is off the list)."""
        if device == self.ks.device:
            raise CryptoError("a device cannot remove itself from the list")
        if self.ks.get(NS_DEVICE, "master") is not None:
            await self.publish_device_list([], remove=[device])
            return
        if not await self.request_device_change("remove", b"\x00" * 32, device):
            raise CryptoError("no other device of yours could be reached")
        # Until the holder's new list arrives, this device already gives it nothing.
        _save(self.ks, NS_DEVICE, "removed", sorted(self._removed() | {device}))
        self.forget_devices(self.ks.account)

    def _removed(self) -> set[int]:
        """Own devices the user removed here, left out of every recipient set even while a
        list naming them is still the newest this device has."""
        raw = self.ks.get(NS_DEVICE, "removed")
        return set() if raw is None else set(msgspec.msgpack.decode(raw, type=list[int]))

    async def _apply_device_change(self, device: int, change: payload.DeviceChange) -> None:
        """A listed device of this account asked for a list change (the caller checked the
        sender): record an approval; apply a removal if this device holds the master key."""
        own = self.ks.account
        if change.account != own:
            raise UntrustedDevice("a device change for another account")
        if change.op == "approve":
            self.approve(change.device_key)
            return
        if self.ks.get(NS_DEVICE, "master") is None:
            return  # the holder applies it
        listed = {d.device: d for d in await self.devices(own)}
        entry = listed.get(change.device)
        if entry is None:
            return  # already removed
        if not constant_time_equal(entry.signing_key, change.device_key):
            raise UntrustedDevice(f"removal of device {change.device} names another key")
        if change.device == self.ks.device:
            raise UntrustedDevice(f"device {device} asked to remove the master key's device")
        await self.publish_device_list([], remove=[change.device])

    # ------------------------------------------------------------------ trust

    def trust(self, account: int) -> _Trust | None:
        found: _Trust | None = _load(self.ks, NS_TRUST, str(account), _Trust)
        return found

    async def devices(self, account: int, *, refresh: bool = False) -> list[devicelist.DeviceEntry]:
        """The account's devices as its signed list says (pinning its master key on first use).

        Raises ``UntrustedDevice`` when the list does not verify, its master key changed, or it
        went backwards; ``CryptoError`` when the account has published no list."""
        pinned = self.trust(account)
        if pinned is not None and not refresh:
            return pinned.devices
        got: F.DeviceList = await self._call(
            F.GetDeviceList(id=self._id(), account=account), F.DeviceList
        )
        if got.version == 0:
            raise NoDeviceList(f"account {account} has published no device list")
        try:  # the version that counts is the signed one in the body, never the frame's
            dl = devicelist.verify_device_list(
                got.body,
                got.sig,
                pinned.master_key if pinned is not None else None,
                account=account,
            )
            if pinned is not None and dl.version < pinned.version:
                raise UntrustedDevice(f"version {dl.version} is older than {pinned.version}")
            if pinned is not None and dl.version == pinned.version:
                if list(dl.devices) != pinned.devices:
                    raise UntrustedDevice(f"another list with the same version {dl.version}")
                return pinned.devices
        except ChatProtoError as exc:
            if pinned is not None and pinned.master_key != got.master_key:
                _save(
                    self.ks, NS_TRUST, str(account), msgspec.structs.replace(pinned, changed=True)
                )
            raise UntrustedDevice(f"device list of account {account} refused: {exc}") from exc
        verified = pinned.verified if pinned is not None else False
        _save(
            self.ks,
            NS_TRUST,
            str(account),
            _Trust(
                master_key=dl.master_key,
                version=dl.version,
                devices=list(dl.devices),
                verified=verified,
            ),
        )
        if account == self.ks.account:
            await self._check_own_entry(dl)
        return list(dl.devices)

    async def _check_own_entry(self, dl: devicelist.DeviceList) -> None:
        """This device, listed by its own account's new list, must be listed with its own keys
        and its PQ prekey: a list made from a bundle the server altered (a PQ prekey stripped
        while it was approved) would let every contact run X3DH with it."""
        state = self.prekeys
        mine = next((d for d in dl.devices if d.device == self.ks.device), None)
        if state is None or mine is None:
            return
        ident = state.identity
        if not (
            constant_time_equal(mine.signing_key, ident.signing_key)
            and constant_time_equal(mine.identity_key, ident.identity_key)
        ):
            await self._warn(self.ks.account, "your device list names this device with other keys")
        elif mine.pq != (state.pq_prekey is not None):
            await self._warn(
                self.ks.account,
                "your device list says this device has no PQ prekey: sessions with it may be"
                " X3DH only (approve it again from the device holding the master key)",
            )

    def forget_devices(self, account: int) -> None:
        """A ``device_list_changed`` arrived: the next look-up fetches and verifies again (the
        pin and the last version stay, so the new list must be signed by the same master key
        and be newer)."""
        self._stale.add(account)

    def accept_key_change(self, account: int) -> None:
        """The user verified ``account``'s keys as they are now: its list is not fetched again
        for a change already accepted (``forget_devices`` marks the next one)."""
        self._stale.discard(account)

    def safety_number(self, account: int) -> str:
        own = self.master_key or self._pinned_master(self.ks.account)
        return safety.account_safety_number(
            self.ks.account, own, account, self._pinned_master(account)
        )

    def _pinned_master(self, account: int) -> bytes:
        pinned = self.trust(account)
        if pinned is None:
            raise CryptoError(f"no pinned key for account {account} yet")
        return pinned.master_key

    def set_verified(self, account: int, verified: bool) -> None:
        pinned = self.trust(account)
        if pinned is None:
            raise CryptoError(f"no pinned key for account {account} yet")
        _save(
            self.ks,
            NS_TRUST,
            str(account),
            msgspec.structs.replace(pinned, verified=verified, changed=False),
        )

    # ------------------------------------------------------------------ sending

    async def encrypt(
        self,
        conv: int,
        kind: str,
        body: bytes,
        members: Sequence[int],
        *,
        addressed_bots: Collection[int] = (),
        addressed: bool = False,
        reply_to: int | None = None,
        log_head: tuple[int, bytes] = (0, b""),
        franking_key: bytes | None = None,
    ) -> bytes:
        """The ``e2e`` body for one message of ``conv`` (whose member accounts are ``members``).
        ``log_head``: the epoch and hash of the verified membership log it is encrypted under.

        ``addressed_bots``: the members that are bots with access ``addressed``; they never get
        the main key. ``addressed``: the message is addressed to one of them (its ``to`` names
        one), so it goes under the addressed key, which they all get (E2E.md 7.1)."""
        lock = self._conv_locks.setdefault(conv, asyncio.Lock())
        async with lock:
            recipients = await self._recipient_devices(members)
            name = str(conv)
            if addressed:
                name += ADDRESSED
            else:
                excluded = set(addressed_bots)
                recipients = [(a, d) for a, d in recipients if a not in excluded]
            out: _Outbound | None = _load(self.ks, NS_OUT, name, _Outbound)
            held = {(a, d) for a, d in out.holders} if out is not None else set()
            if (
                out is None
                or out.recipients
                or out.sent >= ROTATE_AFTER
                or time.time() - out.created > ROTATE_SECONDS
                or not held <= set(recipients)
            ):
                out = _Outbound(key=sender_keys.new_sender_key(conv), created=time.time())
                held = set()
            missing = [(a, d) for a, d in recipients if (a, d) not in held]
            if missing:
                held |= await self._distribute(out.key, missing)
                out.holders = sorted(held)
            view = self.transcript_view(conv)
            plaintext = payload.encode_payload(
                kind,
                body,
                ts=int(time.time() * 1000),
                reply_to=reply_to or None,
                transcript=transcript.outgoing(view, epoch=log_head[0], head=log_head[1]),
                franking_key=franking_key,
            )
            ciphertext, out.key = sender_keys.encrypt(
                out.key, plaintext, sender_account=self.ks.account, sender_device=self.ks.device
            )
            out.sent += 1
            _save(self.ks, NS_OUT, name, out)
            _save(self.ks, NS_TRANSCRIPT, str(conv), transcript.sent(view, ciphertext))
            return ciphertext

    async def seal_once(
        self, conv: int, kind: str, body: bytes, *, reply_to: int | None = None
    ) -> tuple[bytes, sender_keys.SenderKeyState]:
        """One message under a sender key made for it alone (Moments, E2E.md 18): its
        ciphertext and the key, which ``share_key`` hands to whom may read it. This device
        keeps the key to read the message back; a key id is never reused in ``conv``."""
        me, device = self.ks.account, self.ks.device
        while True:
            key = sender_keys.new_sender_key(conv)
            name = sender_key_name(conv, me, device, key.key_id)
            if self.ks.get(NS_IN, name) is None:
                break
        plaintext = payload.encode_payload(
            kind, body, ts=int(time.time() * 1000), reply_to=reply_to or None
        )
        ciphertext, _ = sender_keys.encrypt(key, plaintext, sender_account=me, sender_device=device)
        mine = sender_keys.receiver_from_distribution(
            sender_keys.distribution(key), sender_account=me, sender_device=device
        )
        _save(self.ks, NS_IN, name, mine)
        return ciphertext, key

    async def share_key(
        self, key: sender_keys.SenderKeyState, accounts: Sequence[int]
    ) -> set[tuple[int, int]]:
        """Send ``key`` over the pairwise sessions to every listed device of ``accounts`` and to
        this account's other devices; the (account, device) pairs it reached."""
        recipients = await self._recipient_devices(sorted({*accounts, self.ks.account}))
        return await self._distribute(key, recipients)

    def transcript_view(self, conv: int) -> transcript.View:
        """What this device has read and sent in ``conv`` (E2E.md 16)."""
        view: transcript.View | None = _load(self.ks, NS_TRANSCRIPT, str(conv), transcript.View)
        return transcript.View() if view is None else view

    def observe(
        self,
        conv: int,
        seq: int,
        sender: int,
        device: int,
        body: bytes,
        t: transcript.Transcript,
        *,
        joined: int,
        log_head: tuple[int, bytes],
    ) -> list[transcript.Finding]:
        """Check a just-decrypted message's transcript against what this device has read, in
        seq order, and remember it; what does not add up is returned."""
        view, found = transcript.observe(
            self.transcript_view(conv),
            me=self.ks.device,
            account=sender,
            device=device,
            seq=seq,
            body=body,
            t=t,
            joined=joined,
            epoch=log_head[0],
            head=log_head[1],
        )
        _save(self.ks, NS_TRANSCRIPT, str(conv), view)
        return found

    def rotate(self, conv: int) -> None:
        """Membership or a bot's access changed: the next message of ``conv`` goes out under
        new sender keys (main and addressed)."""
        self.ks.delete(NS_OUT, str(conv))
        self.ks.delete(NS_OUT, str(conv) + ADDRESSED)

    def outbound_key_id(self, conv: int, *, addressed: bool = False) -> int | None:
        """The id of this device's current main (or addressed) sender key for ``conv``."""
        name = str(conv) + (ADDRESSED if addressed else "")
        out: _Outbound | None = _load(self.ks, NS_OUT, name, _Outbound)
        return None if out is None else out.key.key_id

    def inbound_key_ids(self, conv: int, device: int) -> set[int]:
        """The ids of the sender keys of ``device`` for ``conv`` this device was given."""
        out = set()
        for k, _ in self.ks.items(NS_IN):
            c, _account, d, key_id = k.split(":")
            if (int(c), int(d)) == (conv, device):
                out.add(int(key_id))
        return out

    async def _recipient_devices(self, members: Sequence[int]) -> list[tuple[int, int]]:
        out = []
        for account in sorted(set(members)):
            pinned = self.trust(account)
            if pinned is not None and pinned.changed:
                raise UntrustedDevice(
                    f"the keys of account {account} changed after you verified them:"
                    " compare safety numbers, then call verify() to send again"
                )
            refresh = account in self._stale
            try:
                devices = await self._listed_devices(account, refresh)
            except NoDeviceList as exc:
                log.warning("%s: its devices cannot read this message", exc.message)
                continue
            self._stale.discard(account)
            gone = self._removed() if account == self.ks.account else set()
            out += [
                (account, d.device)
                for d in devices
                if d.device != self.ks.device and d.device not in gone
            ]
        return out

    async def _listed_devices(self, account: int, refresh: bool) -> list[devicelist.DeviceEntry]:
        """``devices``, waiting a little for an account that has not published its list yet:
        a new account publishes it right after registering, and a message sent to it in that
        moment should still reach it."""
        for pause in NO_LIST_WAIT:
            try:
                return await self.devices(account, refresh=refresh)
            except NoDeviceList:
                await asyncio.sleep(pause)
        return await self.devices(account, refresh=refresh)

    async def _distribute(
        self, key: sender_keys.SenderKeyState, to: list[tuple[int, int]]
    ) -> set[tuple[int, int]]:
        """Send the key to ``to``; returns the (account, device) it was sent to (a device
        skipped now, e.g. without a bundle, is tried again with the next message)."""
        content = payload.encode_to_device(sender_keys.distribution(key))
        by_account: dict[int, list[int]] = {}
        for account, device in to:
            by_account.setdefault(account, []).append(device)
        sent: set[tuple[int, int]] = set()
        for account, devices in by_account.items():
            sent |= {(account, d) for d in await self._send_pairwise(account, devices, content)}
        return sent

    async def _send_pairwise(
        self, account: int, devices: Sequence[int], content: bytes
    ) -> list[int]:
        """Encrypt the padded to-device plaintext ``content`` for each of ``account``'s
        ``devices`` over its pairwise session (started from a claimed bundle if none) and send
        it; returns the devices it was sent to. A device not on the account's verified list, or
        without a bundle that carries exactly its listed keys, is skipped. A session whose keys
        are no longer the listed ones is never used: it is dropped, a new one starts, and the
        application is warned (the device's identity changed)."""
        sent: list[int] = []
        listed = {d.device: d for d in await self.devices(account)}
        sessions: dict[int, pairwise.Session | None] = {}
        for device in devices:
            entry = listed.get(device)
            if entry is None:
                continue  # not on the signed list: never given anything
            session = self._session(account, device)
            if session is not None and not pairwise.matches(
                session, entry.signing_key, entry.identity_key
            ):
                self._drop_sessions(account, device)
                await self._warn(account, _new_identity(account, device))
                session = None
            sessions[device] = session
        bundles: dict[int, F.Bundle] = {}
        if None in sessions.values():
            got: F.Bundles = await self._call(
                F.ClaimKeys(id=self._id(), account=account), F.Bundles
            )
            bundles = {b.device: b for b in got.bundles}
        for device, session in sessions.items():
            entry = listed[device]
            bundle = None
            if session is None:
                b = bundles.get(device)
                if b is None or b.signed_prekey is None:
                    log.warning("no bundle for device %s of account %s", device, account)
                    continue
                if b.identity_key != entry.identity_key:
                    await self._warn(
                        account, f"device {device}: bundle identity key is not the listed one"
                    )
                    continue
                bundle = _bundle(b)
            try:
                message, session = pairwise.encrypt_to_device(
                    session,
                    content,
                    identity=self.identity,
                    bundle=bundle,
                    expected_signing_key=entry.signing_key,
                    require_pq=entry.pq,
                )
            except UntrustedKeyError as exc:  # a forged or downgraded (PQ-stripped) bundle
                await self._warn(account, f"device {device}: {exc.message}")
                continue
            self._keep_session(account, device, session)
            await self._call(F.ToDevice(id=self._id(), device=device, body=message), F.Ok)
            sent.append(device)
        return sent

    async def transfer_master_key(self, device: int, *, keep: bool = True) -> None:
        """Send the account's master key to ``device`` of this account over the pairwise session
        (the caller's decision is the user's approval). Refused (``UntrustedDevice``) unless
        ``device`` is on the account's verified device list and is not this device. With
        ``keep=False`` this device deletes its own copy once the server accepted the item."""
        seed = self.ks.get(NS_DEVICE, "master")
        if seed is None:
            raise CryptoError("this device does not hold the account's master key")
        account = self.ks.account
        if device == self.ks.device:
            raise UntrustedDevice("the master key is already on this device")
        master_key = SigningKey(seed).public_key
        pinned = self.trust(account)
        if pinned is None or pinned.master_key != master_key:
            raise UntrustedDevice("this account's pinned master key is not the one held here")
        listed = {d.device for d in await self.devices(account, refresh=True)}
        if device not in listed:
            raise UntrustedDevice(
                f"device {device} is not on this account's signed device list: approve it first"
            )
        content = payload.encode_to_device(payload.MasterKeyTransfer(account=account, seed=seed))
        if device not in await self._send_pairwise(account, [device], content):
            raise CryptoError(f"device {device} has no published keys: nothing was sent")
        if not keep:
            self.ks.delete(NS_DEVICE, "master")

    # ------------------------------------------------------------------ receiving

    async def receive_to_device(self, item: F.ToDeviceItem | F.ToDeviceEvent) -> Received:
        """Decrypt one to-device item and store what it carries: a sender key (``Received.conv``
        is the conversation it unlocks) or this account's master key (``Received.master_key``).
        Whatever the sender's signed device list (or, for a master key, the pinned master key
        of this account) does not vouch for raises ``UntrustedDevice`` and is not stored. The
        session is the one with (``item.sender``, ``item.device``) and the keys its list names:
        another account naming the same device id, or the device with other keys, never
        continues or replaces it."""
        sender_devices = {d.device: d for d in await self.devices(item.sender, refresh=True)}
        entry = sender_devices.get(item.device)
        if entry is None:
            raise UntrustedDevice(
                f"to-device item from device {item.device}, not on account {item.sender}'s list"
            )
        state = self.prekeys
        assert state is not None
        try:
            result = self._decrypt_pairwise(item.sender, entry, state, item.body)
        except UntrustedKeyError as exc:
            raise UntrustedDevice(
                f"device {item.device} of account {item.sender}: {exc.message}"
            ) from exc
        content: payload.ToDeviceContent | None = None
        receiver: sender_keys.SenderKeyReceiverState | None = None
        refused: ChatProtoError | None = None
        try:
            content = payload.decode_to_device(result.plaintext)
            if isinstance(content, sender_keys.SenderKeyDistribution):
                receiver = sender_keys.receiver_from_distribution(
                    content, sender_account=item.sender, sender_device=item.device
                )
        except ChatProtoError as exc:
            refused = exc  # the message is used up all the same: its ratchet step is kept
        with self.ks.atomic():  # the ratchet step and the key it carried, together
            _save(self.ks, NS_DEVICE, "prekeys", result.prekeys)
            changed = self._keep_session(item.sender, item.device, result.session)
            if receiver is not None:
                name = sender_key_name(receiver.conv, item.sender, item.device, receiver.key_id)
                if self.ks.get(NS_IN, name) is None:
                    # Never replaced: a distribution again (replayed, or re-sent) would rewind
                    # the chain and make messages already read readable again.
                    _save(self.ks, NS_IN, name, receiver)
        if changed:
            await self._warn(item.sender, _new_identity(item.sender, item.device))
        if refused is not None:
            raise refused
        if isinstance(content, payload.MasterKeyTransfer):
            self._accept_master_key(item.sender, item.device, content)
            return Received(master_key=True)
        if isinstance(content, payload.DeviceChange):
            if item.sender != self.ks.account:
                raise UntrustedDevice(f"a device change from account {item.sender}")
            await self._apply_device_change(item.device, content)
            return Received()
        return Received(conv=None if receiver is None else receiver.conv)

    def _accept_master_key(
        self, sender: int, device: int, transfer: payload.MasterKeyTransfer
    ) -> None:
        """Store a transferred master seed, only if it comes from a listed device of this very
        account (checked by the caller against the list verified with the pinned master key)
        and its public key is that pinned master key."""
        account = self.ks.account
        if sender != account or transfer.account != account:
            raise UntrustedDevice(
                f"master key transfer from device {device} of account {sender} refused:"
                " only this account's own devices may send it"
            )
        pinned = self.trust(account)
        if pinned is None:
            raise UntrustedDevice("master key transfer refused: no pinned master key")
        if not constant_time_equal(SigningKey(transfer.seed).public_key, pinned.master_key):
            raise UntrustedDevice(
                f"master key transfer from device {device} refused:"
                " it is not this account's pinned master key"
            )
        self.ks.put(NS_DEVICE, "master", transfer.seed)

    def _decrypt_pairwise(
        self,
        account: int,
        entry: devicelist.DeviceEntry,
        prekeys: x3dh.PreKeyState,
        body: bytes,
    ) -> pairwise.Decrypted:
        """Try the current session with (``account``, ``entry.device``), then the archived
        ones (newest first), only those with the listed keys.

        Two devices that start sessions with each other at the same moment each end up with
        two: the one it started and the one the other started. Whichever the peer encrypts
        with next must still open, so replaced sessions are archived, not dropped (Signal
        keeps "previous session states" for the same reason). A PREKEY message continues the
        kept session it names, is refused if it names one already gone (a replay), and else
        starts a new session: PQXDH only when the sender's list says it has ML-KEM and so do
        we (E2E.md 4.3)."""
        device = entry.device
        live = [
            s
            for s in (self._session(account, device), *self._archived(account, device))
            if s is not None and pairwise.matches(s, entry.signing_key, entry.identity_key)
        ]
        if pairwise.message_type(body) == "prekey":
            return pairwise.decrypt_from_device(
                live[0] if live else None,
                prekeys,
                body,
                expected_signing_key=entry.signing_key,
                expected_identity_key=entry.identity_key,
                previous=live[1:],
                seen_base_keys=self._base_keys(),
                require_pq=entry.pq and prekeys.pq_prekey is not None,
            )
        if not live:
            raise DecryptError(f"no session with device {device} of account {account}")
        error: ChatProtoError | None = None
        for session in live:
            try:
                return pairwise.decrypt_from_device(session, prekeys, body)
            except ChatProtoError as exc:
                error = error or exc
        assert error is not None
        raise error

    def _session(self, account: int, device: int) -> pairwise.Session | None:
        found: pairwise.Session | None = _load(
            self.ks, NS_SESSION, session_name(account, device), pairwise.Session
        )
        return found

    def _archived(self, account: int, device: int) -> list[pairwise.Session]:
        raw = self.ks.get(NS_SESSION, session_name(account, device) + ".archive")
        return [] if raw is None else msgspec.msgpack.decode(raw, type=list[pairwise.Session])

    def _base_keys(self) -> list[bytes]:
        raw = self.ks.get(NS_DEVICE, "base_keys")
        return [] if raw is None else msgspec.msgpack.decode(raw, type=list[bytes])

    def _drop_sessions(self, account: int, device: int) -> None:
        name = session_name(account, device)
        self.ks.delete(NS_SESSION, name)
        self.ks.delete(NS_SESSION, name + ".archive")

    def _keep_session(self, account: int, device: int, session: pairwise.Session) -> bool:
        """Make ``session`` the current one with (``account``, ``device``); the one it replaces
        is archived (at most ``MAX_ARCHIVED``), an archived copy of ``session`` itself is
        dropped, and so is every kept session with other remote keys. True when there was
        one: the device's identity changed (a safety event for the caller to report)."""
        name = session_name(account, device)
        kept = [s for s in (self._session(account, device), *self._archived(account, device)) if s]
        same = [
            s
            for s in kept
            if pairwise.matches(s, session.remote_signing_key, session.remote_identity_key)
        ]
        archive = [s for s in same if s.base_key != session.base_key]
        if archive or len(kept) > 1:
            _save(self.ks, NS_SESSION, name + ".archive", archive[:MAX_ARCHIVED])
        _save(self.ks, NS_SESSION, name, session)
        if not kept or kept[0].base_key != session.base_key:  # a session new here
            bases = self._base_keys()
            if session.base_key not in bases:
                _save(self.ks, NS_DEVICE, "base_keys", [*bases, session.base_key][-MAX_BASE_KEYS:])
        return len(same) < len(kept)

    def decrypt(
        self, conv: int, seq: int, sender: int, device: int, body: bytes, fc: bytes | None = None
    ) -> Decrypted:
        """Decrypt one conversation message with a stored sender key (``MissingKey`` when none
        has arrived yet; ``DecryptError`` for tampering or a replay; ``BadCommitment`` when
        its franking key does not open the commitment ``fc`` delivered with it, E2E.md 17)."""
        cached: _Plain | None = _load(self.ks, NS_PLAIN, f"{conv}:{seq}", _Plain)
        if cached is not None:
            return Decrypted(cached.kind, cached.body, cached.reply_to)
        key_id = sender_keys.message_key_id(body)
        name = sender_key_name(conv, sender, device, key_id)
        state: sender_keys.SenderKeyReceiverState | None = _load(
            self.ks, NS_IN, name, sender_keys.SenderKeyReceiverState
        )
        if state is None:
            raise MissingKey(f"no sender key {key_id} from device {device} for conversation {conv}")
        if state.sender_account != sender:
            raise DecryptError("sender key belongs to another account")
        gap = max(0, sender_keys.message_iteration(body) - state.iteration)
        plaintext, state = sender_keys.decrypt(state, body)
        try:
            inner = payload.decode_payload(plaintext)
        except ProtocolError as exc:
            raise DecryptError(f"bad payload: {exc.message}") from exc
        reply_to = inner.reply_to or 0
        if inner.fk is not None and (
            fc is None
            or not franking.opens(fc, inner.fk, franking.encode_plaintext(inner.kind, inner.body))
        ):
            # Franked, but not as delivered: it could not be reported (Messenger's rule, the
            # commitment is checked before display). The key is used up; nothing is kept.
            _save(self.ks, NS_IN, name, state)
            raise BadCommitment(
                "its franking commitment does not match its content (it could not be"
                " reported): not shown"
            )
        with self.ks.atomic():  # a used message key and the plaintext it opened, together
            _save(self.ks, NS_IN, name, state)
            _save(
                self.ks,
                NS_PLAIN,
                f"{conv}:{seq}",
                _Plain(inner.kind, inner.body, reply_to, inner.fk or b""),
            )
        return Decrypted(inner.kind, inner.body, reply_to, inner.tr, gap)

    def give_up(self, conv: int, device: int, body: bytes) -> None:
        self._given_up.add((conv, device, sender_keys.message_key_id(body)))

    def given_up(self, conv: int, device: int, body: bytes) -> bool:
        try:
            return (conv, device, sender_keys.message_key_id(body)) in self._given_up
        except ChatProtoError:
            return False

    def opening(self, conv: int, seq: int) -> tuple[str, bytes, bytes] | None:
        """``(kind, body, franking key)`` of message ``seq`` of ``conv`` as this device
        decrypted it (E2E.md 17); None when it has not, or the message was not franked."""
        cached: _Plain | None = _load(self.ks, NS_PLAIN, f"{conv}:{seq}", _Plain)
        if cached is None or not cached.fk:
            return None
        return cached.kind, cached.body, cached.fk

    def remember_own(self, conv: int, seq: int, kind: str, body: bytes, reply_to: int = 0) -> None:
        """Keep the plaintext of this device's own message (it cannot decrypt its own sends)."""
        _save(self.ks, NS_PLAIN, f"{conv}:{seq}", _Plain(kind, body, reply_to))


def _new_identity(account: int, device: int) -> str:
    return (
        f"device {device} of account {account} has new keys: a new session replaces the old"
        " one (compare safety numbers if you did not expect it)"
    )


def _wire_spk(spk: x3dh.SignedPrekey) -> F.SignedPrekey:
    return F.SignedPrekey(kid=spk.kid, key=spk.key, sig=spk.sig)


def _bundle(b: F.Bundle) -> x3dh.PreKeyBundle:
    assert b.signed_prekey is not None
    return x3dh.PreKeyBundle(
        signing_key=b.signing_key,
        identity_key=b.identity_key,
        identity_sig=b.identity_sig,
        signed_prekey=x3dh.SignedPrekey(
            kid=b.signed_prekey.kid, key=b.signed_prekey.key, sig=b.signed_prekey.sig
        ),
        pq_prekey=None
        if b.pq_prekey is None
        else x3dh.SignedPrekey(kid=b.pq_prekey.kid, key=b.pq_prekey.key, sig=b.pq_prekey.sig),
        one_time=None
        if b.one_time is None
        else x3dh.OneTimePrekey(kid=b.one_time.kid, key=b.one_time.key),
    )


def content_of(d: Decrypted) -> kinds.Content | None:
    try:
        return kinds.decode_content(d.kind, d.body)
    except ProtocolError:
        return None
