ALTER TABLE refresh_tokens
    DROP INDEX idx_refresh_tokens_expires_at;

--bun:split

ALTER TABLE audit_log
    DROP INDEX idx_audit_log_action_id,
    DROP INDEX idx_audit_log_actor_id,
    DROP INDEX idx_audit_log_created_at;

--bun:split

ALTER TABLE clients
    DROP INDEX idx_clients_updated_at,
    DROP INDEX idx_clients_not_after,
    DROP INDEX idx_clients_status,
    DROP INDEX idx_clients_client_id;

--bun:split

ALTER TABLE messages
    DROP INDEX idx_messages_sender_number_hash,
    DROP INDEX idx_messages_encryption_key_id,
    DROP INDEX idx_messages_created_at,
    DROP INDEX idx_messages_status_id,
    DROP INDEX idx_messages_client_id_id;
