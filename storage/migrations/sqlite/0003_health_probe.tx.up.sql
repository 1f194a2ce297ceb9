-- One row the health check rewrites, so it learns whether the database
-- still takes writes (a full disk, a read-only file or a file deleted under
-- the gateway fail this write while a ping still succeeds).
CREATE TABLE health_probe (
    id         INTEGER NOT NULL PRIMARY KEY,
    checked_at TIMESTAMP NOT NULL
);
