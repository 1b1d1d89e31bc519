-- chatd schema, version 8 (SQLite): consent (SPEC.md 18). Contacts, blocks, privacy settings,
-- and pending message requests and invitations.

-- account_id's contacts: the accounts it accepted (their message request) or messaged first.
CREATE TABLE contacts (
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    contact_id  INTEGER NOT NULL REFERENCES accounts (id),
    since       INTEGER NOT NULL,
    PRIMARY KEY (account_id, contact_id)
) WITHOUT ROWID;

-- account_id blocked blocked_id. When blocked_id was a member of their direct conversation,
-- that membership is suspended (deleted) and kept here to be restored by the unblock.
CREATE TABLE blocks (
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    blocked_id  INTEGER NOT NULL REFERENCES accounts (id),
    since       INTEGER NOT NULL,
    conv_id     INTEGER REFERENCES conversations (id),
    joined_seq  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, blocked_id)
) WITHOUT ROWID;

-- Settings an account chose; an account without a row has the server's defaults.
CREATE TABLE privacy (
    account_id  INTEGER PRIMARY KEY REFERENCES accounts (id),
    add_me      TEXT NOT NULL CHECK (add_me IN ('everyone', 'contacts', 'nobody')),
    presence    TEXT NOT NULL CHECK (presence IN ('everyone', 'contacts', 'nobody')),
    last_seen   TEXT NOT NULL CHECK (last_seen IN ('everyone', 'contacts', 'nobody'))
);

-- A request of conv_id to account_id from sender: a direct conversation from a non-contact
-- (account_id is a member but the conversation is not yet accepted) or an invitation to a group
-- or channel (account_id is not a member). 'accepted': an invitation to a conversation with a
-- signed membership log, accepted, waiting for an admin's signed invite.
CREATE TABLE requests (
    conv_id     INTEGER NOT NULL REFERENCES conversations (id),
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    sender      INTEGER NOT NULL REFERENCES accounts (id),
    at          INTEGER NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'accepted')),
    PRIMARY KEY (conv_id, account_id)
) WITHOUT ROWID;
CREATE INDEX requests_by_account ON requests (account_id, conv_id);

-- Per-sender quotas on a device's to-device queue (SPEC.md 18.5).
CREATE INDEX to_device_by_sender ON to_device (device_id, sender);

-- Before consent, every direct conversation was accepted by both: each member becomes the
-- other's contact, so no existing conversation turns into a request.
INSERT INTO contacts (account_id, contact_id, since)
SELECT DISTINCT m.account_id, o.account_id, 0 FROM members m
  JOIN conversations c ON c.id = m.conv_id AND c.kind = 'direct'
  JOIN members o ON o.conv_id = m.conv_id AND o.account_id != m.account_id;
