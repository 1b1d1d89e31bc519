-- chatd schema, version 26 (PostgreSQL): declined invitations kept until the inviter is told (SPEC.md 18.3,
-- "The inviter is told"). invitation_answered is pushed to the inviter's connections only; an
-- inviter offline then reads its answers with list_answers at its next login: the accepted ones
-- are the requests rows in state 'accepted' it sent, the declined ones are these rows, until its
-- client dismisses them (dismiss_answer) or it invites the account again. One row per
-- (conversation, invitee): answering needs a pending invitation, and a new one deletes the row.
CREATE TABLE declines (
    conv_id     BIGINT NOT NULL REFERENCES conversations (id),
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    sender      BIGINT NOT NULL REFERENCES accounts (id),
    at          BIGINT NOT NULL,
    PRIMARY KEY (conv_id, account_id)
);
CREATE INDEX declines_by_sender ON declines (sender, conv_id, account_id);
CREATE INDEX requests_by_sender ON requests (sender, conv_id, account_id);
