-- One row the health check rewrites, so it learns whether the database
-- still takes writes (a full disk or a read-only server fail this write
-- while a ping still succeeds).
CREATE TABLE health_probe (
    id         INT NOT NULL PRIMARY KEY,
    checked_at DATETIME(6) NOT NULL
) ENGINE=InnoDB;
