-- Secondary indexes for the portal, admin and key-rotation queries. One ALTER
-- per table so each table is rebuilt once.

ALTER TABLE messages
    ADD INDEX idx_messages_client_id_id (client_id, id),
    ADD INDEX idx_messages_status_id (status, id),
    ADD INDEX idx_messages_created_at (created_at),
    ADD INDEX idx_messages_encryption_key_id (encryption_key_id),
    ADD INDEX idx_messages_sender_number_hash (sender_number_hash);

--bun:split

ALTER TABLE clients
    ADD INDEX idx_clients_client_id (client_id),
    ADD INDEX idx_clients_status (status),
    ADD INDEX idx_clients_not_after (not_after),
    ADD INDEX idx_clients_updated_at (updated_at);

--bun:split

ALTER TABLE audit_log
    ADD INDEX idx_audit_log_created_at (created_at),
    ADD INDEX idx_audit_log_actor_id (actor, id),
    ADD INDEX idx_audit_log_action_id (action, id);

--bun:split

ALTER TABLE refresh_tokens
    ADD INDEX idx_refresh_tokens_expires_at (expires_at);
