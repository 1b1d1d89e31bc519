"""Storage: one file per concern, each use case written once for SQLite and PostgreSQL.

=================================================  =========================================
use case                                           file
=================================================  =========================================
interfaces, rows, what each method returns/raises  ``base.py``
accounts, devices, last seen                       ``accounts.py``
conversations, members, roles, membership logs     ``conversations.py``
reading messages, cursors, system messages         ``messages.py``
deleting a message for everyone (tombstones)       ``moderation.py``
message franking, reports                          ``reports.py``
appending a message (the hot path)                 ``sqlite.py`` / ``postgres.py`` (``append``)
E2E keys, device lists, the to-device queue        ``keys.py``
bot profiles and bot access                        ``bots.py``
Web Push subscriptions                             ``push.py``
invite links and join requests                     ``links.py``
public channels, follows, signed posts, comments   ``channels.py``
reactions and counts, the channel directory        ``channels.py``
Moments, audiences, encrypted comments and likes   ``moments.py``
wallets, payments, red packets, requests, audit    ``ledger.py``
``chatd wallet`` on its own connection             ``ledger_sqlite.py`` / ``ledger_postgres.py``
running SQL on either database (the dialects)      ``sql.py``
connections, the writer's transaction, seqs        ``sqlite.py`` / ``postgres.py``
group commit (queue, batches, shutdown)            ``writer.py``
schema migrations                                  ``migrate.py``, ``migrations/``
=================================================  =========================================

Who may do what is ``chatd.core`` (``rules``, ``ledger``, ``publishing``); a transaction script checks it
inside the write's own transaction, before it writes anything.
"""
