-- Certificate storage keys name domains: "certificates/<issuer>/<domain>/<domain>.json"
-- reaches about 570 characters for a 253-character domain, past the 255 of
-- 0001. 768 utf8mb4 characters is the longest InnoDB can index (3,072 bytes).
-- The storage module refuses longer keys on every database alike.
ALTER TABLE certmagic_data
    MODIFY `key` VARCHAR(768) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;

--bun:split

ALTER TABLE certmagic_locks
    MODIFY name VARCHAR(768) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
