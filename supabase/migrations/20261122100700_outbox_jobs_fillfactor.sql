-- outbox_jobs keeps 30% of each page free for new row versions.
--
-- A job's row is written three times (enqueue, claim, complete, plus retries). Completing
-- a job changes no indexed column, so PostgreSQL can keep the new version on the same page
-- and skip the indexes (a HOT update), but only where the page has room; a queue table is
-- all updates, so it trades space for that. Applies to pages written from now on.

alter table public.outbox_jobs set (fillfactor = 70);
