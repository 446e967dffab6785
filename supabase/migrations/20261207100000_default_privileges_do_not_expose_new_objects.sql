-- New tables, views, sequences and functions that postgres creates in public are not
-- exposed to the API roles by default, as on every project with Supabase's current default.
--
-- Found by review: `20261206100000` made this project's own objects independent of the
-- default privileges, but a project that still has the old default (grant all on every new
-- table, sequence and function in public to anon, authenticated and service_role) keeps it
-- for whatever is created later: an object made in the SQL editor, or by a migration that
-- forgets its revokes, was readable and writable by anon at once (a table without RLS
-- through PostgREST, a function callable by anyone). These are the statements Supabase runs
-- for its "default privileges for new entities" setting off; on a project that already has
-- that default they change nothing. Every migration of this project still revokes and grants
-- explicitly; the privileges test compares the default privileges too.

alter default privileges for role postgres in schema public
revoke select, insert, update, delete on tables from anon, authenticated, service_role;

alter default privileges for role postgres in schema public
revoke usage, select on sequences from anon, authenticated, service_role;

alter default privileges for role postgres in schema public
revoke execute on functions from anon, authenticated, service_role;
