"""Encrypted attachments (SPEC.md 17, E2E.md 14): blob storage (``store``: the interface;
``fs`` and ``pg``: its implementations), tokens, quotas and the sweeper (``service``), and the
HTTP routes served on the WebSocket port (``http``). The server only ever holds padded
ciphertext: keys, names, types and thumbnails travel inside end-to-end encrypted messages."""
