"""End-to-end encryption for chatd clients (protocol/E2E.md), sans-I/O.

``primitives`` is the only importer of ``cryptography.hazmat``. The other modules are pure
functions over immutable msgspec state: ``x3dh`` (PQXDH/X3DH key agreement), ``ratchet``
(Double Ratchet), ``pairwise`` (to-device messages), ``sender_keys`` (group messages),
``payload`` (plaintexts and padding), ``safety`` (safety numbers), ``devicelist`` (signed device
lists), ``stores`` (storage protocols).
"""
