"""Keys: this device's to-device queue, device lists, and the trust in other accounts' keys
(SPEC.md 14, E2E.md).

Sender keys and other end-to-end items reach a device through its to-device queue: pushed live
(``to_device_event``) and fetched after every login (``fetch_to_device``), processed once each,
one at a time, in ``tid`` order, and acknowledged only once processed and persisted. What was
processed is one number, the last tid (later items are new, earlier ones done), so no item is
ever processed ahead of one with a lower tid: a live item is processed as it comes only when it
is the very next one (its tid is the last one's + 1); any other (one queued while this device was
away, or during the login, is not processed yet) makes the worker fetch the queue, in order.
When an item cannot be checked for now (the connection failed), later live items wait and the
queue is fetched again soon, in order. A sender key that arrives lets parked messages open
(``on_sender_key``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

from chatproto import auth
from chatproto import frames as F
from chatproto.errors import ChatProtoError

from chatclient.connection import Connection
from chatclient.e2e import E2E
from chatclient.errors import ChatClientError
from chatclient.events import DevicesChanged, MasterKeyReceived, SecurityWarning

log = logging.getLogger("chatclient.client")


class Keys:
    """The to-device queue's worker, device lists, safety numbers and verification."""

    def __init__(self, conn: Connection, e2e: E2E, *, encrypt: bool) -> None:
        self._conn = conn
        self.e2e = e2e
        self.encrypt = encrypt
        self.on_sender_key: Callable[[int], Awaitable[None]] | None = None
        """Called with a conversation whose sender key just arrived (parked messages open)."""
        self._queue: asyncio.Queue[F.ToDeviceEvent | F.ToDeviceItem] = asyncio.Queue(10_000)
        self._paused = False
        """Set when an item could not be processed: later live ones wait for the next fetch
        (which a recovery task makes soon, or the next login)."""
        self._recovering = False
        self._lock = asyncio.Lock()
        """Held while items are processed (by the worker or a fetch): one at a time, in order."""
        self.worker: asyncio.Task[None] | None = None

    def start(self, tasks: asyncio.TaskGroup) -> None:
        self.worker = tasks.create_task(self._work(), name="chatclient-e2e")

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    # ------------------------------------------------------------------ pushed by the server

    def on_to_device(self, item: F.ToDeviceEvent) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # else the next fetch gets it
            self._queue.put_nowait(item)

    async def on_device_list_changed(self, account: int) -> None:
        self.e2e.forget_devices(account)
        await self._conn.emit(DevicesChanged(account))
        if self.encrypt:
            self._conn.spawn(self._check_devices(account))

    async def _check_devices(self, account: int) -> None:
        """Verify an account's new device list at once, so a forged list or a changed master
        key is reported when announced, not only as a refused send."""
        try:
            await self.e2e.devices(account, refresh=True)
        except ChatProtoError as exc:
            await self._conn.emit(SecurityWarning(account, exc.message))
        except (ChatClientError, TimeoutError):
            pass  # offline: the next send checks it

    # ------------------------------------------------------------------ the queue

    async def _work(self) -> None:
        c = self._conn
        while not c.closed:
            item = await self._queue.get()
            if self._paused:
                continue  # left queued on the server: the next login's fetch takes it
            async with self._lock:
                done = self._done()
                if item.tid <= done:
                    continue  # fetched already
                if item.tid != done + 1:
                    # An item before it may be queued and not processed yet (sent while this
                    # device was away or logging in, or pushed late): processing this one now
                    # would mark that one done unread. The queue has both, in order.
                    try:
                        await self._fetch()
                    except (ChatClientError, TimeoutError) as exc:
                        log.info("to-device fetch failed, retrying: %s", exc)
                        self._pause()
                    continue
                if await self._handle(item):
                    with contextlib.suppress(ChatClientError, TimeoutError):
                        await c.call(F.AckToDevice(id=c.next_id(), up_to=item.tid), F.Ok)
                else:
                    self._pause()

    def _done(self) -> int:
        """The tid of the last item processed (every item up to it is)."""
        return int(self._conn.keystore.get("e2e.device", "to_device_done") or b"0")

    def _pause(self) -> None:
        """An item could not be processed (it stays queued on the server): later live items
        wait, and a task fetches the queue again soon, in order."""
        self._paused = True
        if not self._recovering and not self._conn.closed:
            self._recovering = True
            if self._conn.spawn(self._recover()) is None:
                self._recovering = False

    async def _recover(self) -> None:
        """Fetch the to-device queue again, backing off, until it went through (instead of
        leaving sender keys waiting until the next login)."""
        pause = 0.2
        try:
            while self._paused and not self._conn.closed:
                await asyncio.sleep(pause * (0.5 + random.random()))
                pause = min(pause * 2, 5.0)
                if not self._conn.ready.is_set():
                    continue  # not logged in: retried once the connection is back
                try:
                    await self.fetch_to_device()
                except (ChatClientError, TimeoutError) as exc:
                    self._paused = True
                    log.info("to-device fetch failed, retrying: %s", exc)
        finally:
            self._recovering = False

    async def _handle(self, item: F.ToDeviceEvent | F.ToDeviceItem) -> bool:
        """Process one item once (by ``tid``). False when it could not be checked for now (the
        connection failed): it stays queued on the server and is not acknowledged. Called with
        ``_lock`` held, in tid order."""
        ks = self._conn.keystore
        if item.tid <= self._done():
            return True  # pushed live and fetched again: already processed
        conv: int | None = None
        try:
            received = await self.e2e.receive_to_device(item)
        except ChatProtoError as exc:
            await self._conn.emit(
                SecurityWarning(item.sender, f"to-device item {item.tid} refused: {exc.message}")
            )
        except (ChatClientError, TimeoutError) as exc:
            log.warning("could not check the sender of to-device item %s: %s", item.tid, exc)
            return False
        else:
            conv = received.conv
            if received.master_key:
                await self._conn.emit(MasterKeyReceived(item.device))
        ks.put("e2e.device", "to_device_done", str(item.tid).encode())
        if conv is not None and self.on_sender_key is not None:
            await self.on_sender_key(conv)
        return True

    async def fetch_to_device(self) -> None:
        """Everything queued for this device while it was away, in order, then acknowledged."""
        async with self._lock:
            await self._fetch()

    async def _fetch(self) -> None:
        c = self._conn
        self._paused = False
        after = 0
        while True:
            batch: F.ToDeviceBatch = await c.call(
                F.FetchToDevice(id=c.next_id(), after=after), F.ToDeviceBatch
            )
            acked = after
            for item in batch.events:
                if not await self._handle(item):
                    self._pause()
                    break
                after = item.tid
            if after > acked:
                await c.call(F.AckToDevice(id=c.next_id(), up_to=after), F.Ok)
            if not batch.more or after == acked or self._paused:
                return

    # ------------------------------------------------------------------ devices and trust

    def approve_device(self, device_key: bytes) -> bytes:
        """Signature by this (logged-in) device approving ``device_key`` for its account. The
        approval is also recorded here: the master key lists a device only with a key approved
        so (on the device holding it, or sent there with ``send_approval``)."""
        self.e2e.approve(device_key)
        ks = self._conn.keystore
        return ks.key.sign(
            auth.device_approval_payload(self._conn.server_name, ks.account, device_key)
        )

    def approve_bot(self, handle: str, device_key: bytes) -> tuple[int, bytes]:
        """(this device, its signature) creating bot ``handle`` with key ``device_key``."""
        ks = self._conn.keystore
        payload = auth.bot_approval_payload(self._conn.server_name, handle, device_key)
        return ks.device, ks.key.sign(payload)

    async def publish_devices(self, approve: Sequence[int] = (), remove: Sequence[int] = ()) -> int:
        """Sign the account's device list with its master key (on the device that holds it),
        adding the devices in ``approve`` (each only with the login key approved with
        ``approve_device``: else ``ChatProtoError`` and nothing is published) and leaving out
        those in ``remove``; returns the new version."""
        await self._conn.wait_connected()
        return await self.e2e.publish_device_list(list(approve), list(remove))

    async def send_approval(self, device_key: bytes) -> None:
        """Send this device's approval of ``device_key`` (see ``approve_device``) to the
        account's other devices, end-to-end encrypted, so the one holding the master key can
        list the new device."""
        await self._conn.wait_connected()
        self.e2e.approve(device_key)
        await self.e2e.request_device_change("approve", device_key)

    async def remove_device(self, device: int) -> None:
        """Remove ``device`` (lost, stolen, retired) from this account's device list, from any
        device of the account: the device holding the master key signs the list without it,
        and every sender key it held is replaced before the next message."""
        await self._conn.wait_connected()
        await self.e2e.remove_device(device)

    async def transfer_master_key(self, device: int, *, keep: bool = True) -> None:
        """Hand the account's master key to ``device``, another device of this account (calling
        this is the user's approval). Only on the device that holds the key, and only to a
        device on the account's signed device list (``publish_devices`` first): otherwise it
        raises ``ChatProtoError`` and sends nothing. The key travels end-to-end encrypted over
        the pairwise session; the receiver checks it and emits ``MasterKeyReceived``, after which
        it can ``publish_devices``.

        ``keep`` (default True): this device keeps its copy too, so both can sign lists. With
        ``keep=False`` it deletes its copy as soon as the server accepted the item; if the
        receiving device is lost or refuses it, the account can no longer sign a device list,
        so pass it only when retiring this device."""
        await self._conn.wait_connected()
        await self.e2e.transfer_master_key(device, keep=keep)

    def safety_number(self, account: int) -> str:
        """The 60-digit number both sides compare to verify each other's keys."""
        return self.e2e.safety_number(account)

    def verify(self, account: int) -> None:
        """Mark ``account``'s current keys as verified (after comparing safety numbers); also
        acknowledges a key change, which otherwise blocks sending to it."""
        self.e2e.set_verified(account, True)
        self.e2e.accept_key_change(account)  # else the next send re-fetches the refused list

    def unverify(self, account: int) -> None:
        self.e2e.set_verified(account, False)
