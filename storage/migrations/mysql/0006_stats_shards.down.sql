-- Fold the shards back into one row per counter: build 0005's table, fill
-- it with the sums, and put it in place of the sharded one.

CREATE TABLE message_counts_folded (
    client_id VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL,
    n BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

--bun:split

INSERT INTO message_counts_folded (client_id, status, n)
SELECT client_id, status, SUM(n) FROM message_counts GROUP BY client_id, status;

--bun:split

DROP TABLE message_counts;

--bun:split

RENAME TABLE message_counts_folded TO message_counts;

--bun:split

CREATE TABLE message_hours_folded (
    hour BIGINT NOT NULL,
    registered BIGINT NOT NULL DEFAULT 0,
    delivered BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour)
) ENGINE=InnoDB;

--bun:split

INSERT INTO message_hours_folded (hour, registered, delivered, failed)
SELECT hour, SUM(registered), SUM(delivered), SUM(failed) FROM message_hours GROUP BY hour;

--bun:split

DROP TABLE message_hours;

--bun:split

RENAME TABLE message_hours_folded TO message_hours;

--bun:split

CREATE TABLE message_latency_folded (
    hour BIGINT NOT NULL,
    bucket SMALLINT NOT NULL,
    n BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, bucket)
) ENGINE=InnoDB;

--bun:split

INSERT INTO message_latency_folded (hour, bucket, n)
SELECT hour, bucket, SUM(n) FROM message_latency GROUP BY hour, bucket;

--bun:split

DROP TABLE message_latency;

--bun:split

RENAME TABLE message_latency_folded TO message_latency;
