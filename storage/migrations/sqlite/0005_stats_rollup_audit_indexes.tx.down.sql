DROP INDEX idx_audit_act_o;

--bun:split

DROP INDEX idx_audit_ct_o;

--bun:split

DROP INDEX idx_audit_at_o;

--bun:split

DROP INDEX idx_audit_ac_o;

--bun:split

DROP INDEX idx_audit_t_o;

--bun:split

DROP INDEX idx_audit_c_o;

--bun:split

DROP INDEX idx_audit_a_o;

--bun:split

DROP INDEX idx_audit_o;

--bun:split

CREATE INDEX idx_audit_log_created_at ON audit_log (created_at);

--bun:split

CREATE INDEX idx_audit_log_actor_id ON audit_log (actor, id);

--bun:split

CREATE INDEX idx_audit_log_action_id ON audit_log (action, id);

--bun:split

DROP TABLE message_latency;

--bun:split

DROP TABLE message_hours;

--bun:split

DROP TABLE message_counts;
