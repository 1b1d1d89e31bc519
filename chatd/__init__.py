"""chatd: the server.

The path of one message, from the sender's socket to every recipient's socket:

1. ``transport.server`` takes each binary WebSocket message as websockets' sans-I/O protocol
   parses it and hands the bytes to the connection's ``session.Session``
   (``receive_nowait``, in the read callback), which decodes it with ``chatproto.codec`` (limits
   enforced; a bad frame gets an ``Error`` and the connection stays) and routes the typed
   ``Send``; frames that must wait for something queue, in order, for the connection's handler.
2. ``services.messaging.submit`` queues it on the store without awaiting.
3. ``store.sqlite.SQLiteStore`` (the single writer) commits everything queued as ONE
   transaction: for each message it checks membership and role (``core.rules``), looks the
   ``cmid`` up for idempotency, assigns the next gapless seq, inserts; then COMMIT (fsync),
   on the store's writer thread while the event loop goes on (a small batch on a fast disk
   commits on the loop: the hand-off to the thread would cost more than the fsync).
4. In commit order, ``services.messaging._committed`` encodes ``Deliver`` ONCE and publishes it
   (``services.fanout``) to the broker topic of the conversation, then queues the ``Ack`` to the
   sender. Nothing is acked or published before its commit. The writer calls it itself as the
   batch resolves, then flushes the outbox (``store.writer``): no turn of the loop in between.
5. ``hub.Hub.publish`` stamps the envelope with this node's id, hands it to the broker and
   delivers it to this node's own connections at once (so they keep getting it while Redis is
   down). ``broker.memory`` hands it back synchronously; ``broker.redis`` (``--broker
   redis://...``) buffers it, and its flusher PUBLISHes every pending envelope as one pipeline;
   each node subscribed to the topic gets it on its one Redis connection (RESP3: it publishes and
   subscribes on the same one) and calls its hub, which ignores the envelopes carrying its own
   node id.
6. The hub returns at once if no local connection watches the conversation; otherwise it writes
   the same bytes to each watcher (``transport.link.WsLink.push``; everything a connection is
   owed in one loop turn leaves in one socket write at the end of the turn, or right after the
   batch for what a commit set off), skipping the sender's connection and any connection whose
   sync of that conversation has not caught up. A watcher whose unsent bytes pass the bound is
   dropped as a slow consumer and will resync.

The server never decodes a message body. The store is the truth; ``Sync`` from a cursor repairs
anything the fast path lost.
"""

__version__ = "0.1.0"
