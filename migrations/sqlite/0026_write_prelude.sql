-- PostgreSQL's 0026 adds openintern_write_prelude, a function of its own
-- (SQLite serialises writes by its single writer and needs no locks or
-- commit settings per write); nothing changes here.
SELECT 1;
