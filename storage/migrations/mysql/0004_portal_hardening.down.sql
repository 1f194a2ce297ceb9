ALTER TABLE messages
    DROP INDEX idx_messages_client_id_created_at_id,
    DROP INDEX idx_messages_status_created_at_id,
    DROP INDEX idx_messages_created_at_id,
    ADD INDEX idx_messages_client_id_id (client_id, id),
    ADD INDEX idx_messages_status_id (status, id),
    ADD INDEX idx_messages_created_at (created_at);

--bun:split

ALTER TABLE refresh_tokens
    DROP INDEX uq_refresh_tokens_token_hash,
    DROP CONSTRAINT ck_refresh_tokens_token_hash,
    DROP COLUMN token_hash;
