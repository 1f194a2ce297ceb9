ALTER TABLE audit_log
    DROP INDEX idx_audit_o,
    DROP INDEX idx_audit_a_o,
    DROP INDEX idx_audit_c_o,
    DROP INDEX idx_audit_t_o,
    DROP INDEX idx_audit_ac_o,
    DROP INDEX idx_audit_at_o,
    DROP INDEX idx_audit_ct_o,
    DROP INDEX idx_audit_act_o,
    ADD INDEX idx_audit_log_created_at (created_at),
    ADD INDEX idx_audit_log_actor_id (actor, id),
    ADD INDEX idx_audit_log_action_id (action, id);

--bun:split

DROP TABLE message_latency;

--bun:split

DROP TABLE message_hours;

--bun:split

DROP TABLE message_counts;
