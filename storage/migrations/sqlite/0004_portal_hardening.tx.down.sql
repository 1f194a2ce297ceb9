DROP INDEX idx_messages_client_id_created_at_id;

--bun:split

DROP INDEX idx_messages_status_created_at_id;

--bun:split

DROP INDEX idx_messages_created_at_id;

--bun:split

CREATE INDEX idx_messages_client_id_id ON messages (client_id, id);

--bun:split

CREATE INDEX idx_messages_status_id ON messages (status, id);

--bun:split

CREATE INDEX idx_messages_created_at ON messages (created_at);

--bun:split

DROP INDEX uq_refresh_tokens_token_hash;

--bun:split

ALTER TABLE refresh_tokens DROP COLUMN token_hash;
