-- Refresh tokens are recorded by the SHA-256 of the token, never the token.
-- Rows recorded before this migration have no hash and could never be
-- matched, so they are removed: those sessions end and their users log in
-- again.
DELETE FROM refresh_tokens;

--bun:split

ALTER TABLE refresh_tokens
    ADD COLUMN token_hash CHAR(64) NOT NULL AFTER jti,
    ADD CONSTRAINT ck_refresh_tokens_token_hash CHECK (CHAR_LENGTH(token_hash) = 64),
    ADD UNIQUE KEY uq_refresh_tokens_token_hash (token_hash);

--bun:split

-- The portal lists messages newest first by (created_at, id), so since and
-- until are ranges of the same index that gives the order, with or
-- without a client or status in front. These replace the (client_id, id),
-- (status, id) and (created_at) indexes of 0002, which nothing else needs
-- (the counts by status, by client and since a time use the new ones).
ALTER TABLE messages
    DROP INDEX idx_messages_client_id_id,
    DROP INDEX idx_messages_status_id,
    DROP INDEX idx_messages_created_at,
    ADD INDEX idx_messages_client_id_created_at_id (client_id, created_at, id),
    ADD INDEX idx_messages_status_created_at_id (status, created_at, id),
    ADD INDEX idx_messages_created_at_id (created_at, id);
