-- Maintained counters for the statistics and the audit list's indexes; see
-- the MySQL file of this migration for why. Hours are whole hours since the
-- Unix epoch (UTC); latency buckets are floor(4·log2(microseconds)). SQLite's
-- date functions keep milliseconds, so backfilled latencies are rounded to
-- them; new deliveries are bucketed exactly by the repository.

CREATE TABLE message_counts (
    client_id TEXT NOT NULL,
    status TEXT NOT NULL,
    n INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, status)
) WITHOUT ROWID;

--bun:split

CREATE TABLE message_hours (
    hour INTEGER NOT NULL PRIMARY KEY,
    registered INTEGER NOT NULL DEFAULT 0,
    delivered INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0
);

--bun:split

CREATE TABLE message_latency (
    hour INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    n INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, bucket)
) WITHOUT ROWID;

--bun:split

INSERT INTO message_counts (client_id, status, n)
SELECT client_id, status, COUNT(*) FROM messages GROUP BY client_id, status;

--bun:split

INSERT INTO message_hours (hour, registered)
SELECT CAST(strftime('%s', created_at) AS INTEGER) / 3600 AS h, COUNT(*) FROM messages GROUP BY h;

--bun:split

INSERT INTO message_hours (hour, delivered)
SELECT CAST(strftime('%s', delivered_at) AS INTEGER) / 3600 AS h, COUNT(*) FROM messages
WHERE status = 'delivered' AND delivered_at IS NOT NULL GROUP BY h
ON CONFLICT (hour) DO UPDATE SET delivered = excluded.delivered;

--bun:split

INSERT INTO message_hours (hour, failed)
SELECT CAST(strftime('%s', failed_at) AS INTEGER) / 3600 AS h, COUNT(*) FROM messages
WHERE status = 'failed' AND failed_at IS NOT NULL GROUP BY h
ON CONFLICT (hour) DO UPDATE SET failed = excluded.failed;

--bun:split

INSERT INTO message_latency (hour, bucket, n)
SELECT h, b, COUNT(*) FROM (
    SELECT CAST(strftime('%s', delivered_at) AS INTEGER) / 3600 AS h,
           CASE WHEN us < 1 THEN 0 ELSE CAST(floor(4 * log2(us)) AS INTEGER) END AS b
    FROM (SELECT delivered_at,
                 CAST(round((julianday(delivered_at) - julianday(queued_at)) * 86400000000.0) AS INTEGER) AS us
          FROM messages WHERE status = 'delivered' AND delivered_at IS NOT NULL)
) GROUP BY h, b;

--bun:split

DROP INDEX idx_audit_log_created_at;

--bun:split

DROP INDEX idx_audit_log_actor_id;

--bun:split

DROP INDEX idx_audit_log_action_id;

--bun:split

CREATE INDEX idx_audit_o ON audit_log (outcome, created_at, id);

--bun:split

CREATE INDEX idx_audit_a_o ON audit_log (actor, outcome, created_at, id);

--bun:split

CREATE INDEX idx_audit_c_o ON audit_log (action, outcome, created_at, id);

--bun:split

CREATE INDEX idx_audit_t_o ON audit_log (target, outcome, created_at, id);

--bun:split

CREATE INDEX idx_audit_ac_o ON audit_log (actor, action, outcome, created_at, id);

--bun:split

CREATE INDEX idx_audit_at_o ON audit_log (actor, target, outcome, created_at, id);

--bun:split

CREATE INDEX idx_audit_ct_o ON audit_log (action, target, outcome, created_at, id);

--bun:split

CREATE INDEX idx_audit_act_o ON audit_log (actor, action, target, outcome, created_at, id);
