-- Refresh tokens are recorded by the SHA-256 of the token, never the token.
-- Rows recorded before this migration have no hash and could never be
-- matched, so they are removed: those sessions end and their users log in
-- again. (SQLite wants a default for a NOT NULL column added to a table;
-- the CHECK refuses it in every row.)
DELETE FROM refresh_tokens;

--bun:split

ALTER TABLE refresh_tokens
    ADD COLUMN token_hash CHAR(64) NOT NULL DEFAULT '' CHECK (length(token_hash) = 64);

--bun:split

CREATE UNIQUE INDEX uq_refresh_tokens_token_hash ON refresh_tokens (token_hash);

--bun:split

-- The portal lists messages newest first by (created_at, id), so since and
-- until are ranges of the same index that gives the order. These replace
-- the (client_id, id), (status, id) and (created_at) indexes of 0002.
DROP INDEX idx_messages_client_id_id;

--bun:split

DROP INDEX idx_messages_status_id;

--bun:split

DROP INDEX idx_messages_created_at;

--bun:split

CREATE INDEX idx_messages_client_id_created_at_id ON messages (client_id, created_at, id);

--bun:split

CREATE INDEX idx_messages_status_created_at_id ON messages (status, created_at, id);

--bun:split

CREATE INDEX idx_messages_created_at_id ON messages (created_at, id);
