-- Maintained counters for the statistics, so that GET /admin/stats reads a
-- few hundred small rows instead of counting a million messages. The
-- message repository keeps them in the same transaction as every insert and
-- status change (storage/stats.go). Hours are whole hours since the Unix
-- epoch (UTC); latency buckets are floor(4·log2(microseconds)).

CREATE TABLE message_counts (
    client_id VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL,
    n BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

--bun:split

CREATE TABLE message_hours (
    hour BIGINT NOT NULL,
    registered BIGINT NOT NULL DEFAULT 0,
    delivered BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour)
) ENGINE=InnoDB;

--bun:split

CREATE TABLE message_latency (
    hour BIGINT NOT NULL,
    bucket SMALLINT NOT NULL,
    n BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, bucket)
) ENGINE=InnoDB;

--bun:split

-- Backfill from the messages already stored. Stop every writer of an older
-- version first: it would not keep the counters.
INSERT INTO message_counts (client_id, status, n)
SELECT client_id, status, COUNT(*) FROM messages GROUP BY client_id, status;

--bun:split

INSERT INTO message_hours (hour, registered)
SELECT TIMESTAMPDIFF(HOUR, '1970-01-01 00:00:00', created_at) AS h, COUNT(*) FROM messages GROUP BY h;

--bun:split

INSERT INTO message_hours (hour, delivered)
SELECT TIMESTAMPDIFF(HOUR, '1970-01-01 00:00:00', delivered_at) AS h, COUNT(*) AS c FROM messages
WHERE status = 'delivered' AND delivered_at IS NOT NULL GROUP BY h
ON DUPLICATE KEY UPDATE delivered = VALUES(delivered);

--bun:split

INSERT INTO message_hours (hour, failed)
SELECT TIMESTAMPDIFF(HOUR, '1970-01-01 00:00:00', failed_at) AS h, COUNT(*) AS c FROM messages
WHERE status = 'failed' AND failed_at IS NOT NULL GROUP BY h
ON DUPLICATE KEY UPDATE failed = VALUES(failed);

--bun:split

INSERT INTO message_latency (hour, bucket, n)
SELECT h, b, COUNT(*) FROM (
    SELECT TIMESTAMPDIFF(HOUR, '1970-01-01 00:00:00', delivered_at) AS h,
           CASE WHEN us < 1 THEN 0 ELSE FLOOR(4 * LOG2(us)) END AS b
    FROM (SELECT delivered_at, TIMESTAMPDIFF(MICROSECOND, queued_at, delivered_at) AS us
          FROM messages WHERE status = 'delivered' AND delivered_at IS NOT NULL) AS d
) AS x GROUP BY h, b;

--bun:split

-- The audit list is ordered by (created_at, id), newest first, and filtered
-- by any combination of actor, action, target and outcome. Each combination
-- of actor, action and target has an index with exactly those columns, then
-- outcome, created_at and id: a query is one range scan per outcome (three
-- when no outcome is asked for, merged by the repository). They replace
-- 0002's audit indexes, which ordered by id.
ALTER TABLE audit_log
    DROP INDEX idx_audit_log_created_at,
    DROP INDEX idx_audit_log_actor_id,
    DROP INDEX idx_audit_log_action_id,
    ADD INDEX idx_audit_o (outcome, created_at, id),
    ADD INDEX idx_audit_a_o (actor, outcome, created_at, id),
    ADD INDEX idx_audit_c_o (action, outcome, created_at, id),
    ADD INDEX idx_audit_t_o (target, outcome, created_at, id),
    ADD INDEX idx_audit_ac_o (actor, action, outcome, created_at, id),
    ADD INDEX idx_audit_at_o (actor, target, outcome, created_at, id),
    ADD INDEX idx_audit_ct_o (action, target, outcome, created_at, id),
    ADD INDEX idx_audit_act_o (actor, action, target, outcome, created_at, id);
