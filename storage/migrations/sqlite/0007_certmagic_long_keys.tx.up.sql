-- MySQL's 0007 widens the certificate storage keys to 768 characters.
-- SQLite does not enforce VARCHAR lengths, so there is nothing to change;
-- the storage module enforces the limit on both databases. The migration
-- exists so both databases stand at the same version.
SELECT 1;
