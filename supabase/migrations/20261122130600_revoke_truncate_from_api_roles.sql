-- No TRUNCATE, TRIGGER or REFERENCES for the API roles.
--
-- RLS is the security boundary (issue 3, item 7), but TRUNCATE is not subject to row level
-- security: the platform's default privileges grant it (with TRIGGER and REFERENCES) to anon
-- and authenticated on every table and view created in public. PostgREST never issues these
-- commands, so nothing of the API changes; a direct connection as one of these roles can no
-- longer empty a table or attach to it. service_role keeps its rights (backend and tools).
-- Tables created later by the migration role get the same treatment by default.

revoke truncate, references, trigger on all tables in schema public from anon, authenticated;

alter default privileges in schema public revoke truncate, references, trigger on tables from anon, authenticated;
