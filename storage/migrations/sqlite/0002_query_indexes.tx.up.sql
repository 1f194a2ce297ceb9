-- Secondary indexes for the portal, admin and key-rotation queries.

CREATE INDEX idx_messages_client_id_id ON messages (client_id, id);

--bun:split

CREATE INDEX idx_messages_status_id ON messages (status, id);

--bun:split

CREATE INDEX idx_messages_created_at ON messages (created_at);

--bun:split

CREATE INDEX idx_messages_encryption_key_id ON messages (encryption_key_id);

--bun:split

CREATE INDEX idx_messages_sender_number_hash ON messages (sender_number_hash);

--bun:split

CREATE INDEX idx_clients_client_id ON clients (client_id);

--bun:split

CREATE INDEX idx_clients_status ON clients (status);

--bun:split

CREATE INDEX idx_clients_not_after ON clients (not_after);

--bun:split

CREATE INDEX idx_clients_updated_at ON clients (updated_at);

--bun:split

CREATE INDEX idx_audit_log_created_at ON audit_log (created_at);

--bun:split

CREATE INDEX idx_audit_log_actor_id ON audit_log (actor, id);

--bun:split

CREATE INDEX idx_audit_log_action_id ON audit_log (action, id);

--bun:split

CREATE INDEX idx_refresh_tokens_expires_at ON refresh_tokens (expires_at);
