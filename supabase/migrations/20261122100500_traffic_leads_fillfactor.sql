-- traffic_leads keeps a tenth of each page free for new row versions.
--
-- Issue 3, lead intake: a returning person's lead is updated (gaps filled, last touch,
-- updated_at). When no indexed column changes and the new version fits on the same page,
-- PostgreSQL skips all eight indexes (a HOT update); on full pages it cannot. Applies to
-- pages written from now on (no rewrite, no long lock).

alter table public.traffic_leads set (fillfactor = 90);
