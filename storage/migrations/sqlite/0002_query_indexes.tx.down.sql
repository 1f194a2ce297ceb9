DROP INDEX IF EXISTS idx_refresh_tokens_expires_at;

--bun:split

DROP INDEX IF EXISTS idx_audit_log_action_id;

--bun:split

DROP INDEX IF EXISTS idx_audit_log_actor_id;

--bun:split

DROP INDEX IF EXISTS idx_audit_log_created_at;

--bun:split

DROP INDEX IF EXISTS idx_clients_updated_at;

--bun:split

DROP INDEX IF EXISTS idx_clients_not_after;

--bun:split

DROP INDEX IF EXISTS idx_clients_status;

--bun:split

DROP INDEX IF EXISTS idx_clients_client_id;

--bun:split

DROP INDEX IF EXISTS idx_messages_sender_number_hash;

--bun:split

DROP INDEX IF EXISTS idx_messages_encryption_key_id;

--bun:split

DROP INDEX IF EXISTS idx_messages_created_at;

--bun:split

DROP INDEX IF EXISTS idx_messages_status_id;

--bun:split

DROP INDEX IF EXISTS idx_messages_client_id_id;
