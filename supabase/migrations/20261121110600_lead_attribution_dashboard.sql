-- Attribution: lead -> utm_source -> targetologist -> team, as a view and a dashboard RPC.
--
-- Seed 004: "Невозможно связать лид с таргетологом одним запросом" — now it is one
-- local join. Both objects run with the caller's rights (security_invoker view, security
-- invoker function), so RLS decides what each person sees: a targetologist only the
-- leads attributed to them, sales managers and admins everything.

create view public.traffic_lead_attribution
with (security_invoker = true)
as
select
  l.id as lead_id,
  l.lead_no,
  l.created_at,
  l.source,
  l.utm_source,
  l.first_utm_campaign,
  l.stages,
  s.user_id as targetologist_id,
  u.full_name as targetologist_name,
  u.team_id,
  t.name as team_name
from public.traffic_leads as l
left join public.traffic_user_utm_sources as s on l.utm_source = s.utm_source
left join public.traffic_users as u on s.user_id = u.id
left join public.traffic_teams as t on u.team_id = t.id
where l.merged_into is null;

comment on view public.traffic_lead_attribution is
'Every live lead with the targetologist and team its first-touch utm_source belongs to (NULL = unattributed).';

grant select on public.traffic_lead_attribution to authenticated, service_role;

create or replace function public.traffic_dashboard(
  p_from date default null,
  p_to date default null,
  p_group_by text default 'day',
  p_targetologist_id uuid default null,
  p_team_id uuid default null,
  p_timezone text default 'Asia/Almaty',
  p_live boolean default false
)
returns table (
  bucket text,
  label text,
  leads bigint,
  stages jsonb,
  conversion jsonb
)
language plpgsql
stable
set search_path = ''
-- the period and the source filter differ per call: plan each call for its own values
set plan_cache_mode = force_custom_plan
as $$
declare
  v_uid uuid := (select auth.uid());
  v_sources text [];
  v_to date;
  v_from date;
  v_start timestamptz;
  v_end timestamptz;
  -- the funnel order used for stage-to-stage conversion
  v_funnel text [] := array[
    'lead_captured', 'proftest_submitted', 'expresscourse_clicked', 'expresscourse_submitted',
    'payment_started', 'payment_succeeded'
  ];
begin
  begin
    v_to := coalesce(p_to, (pg_catalog.now() at time zone p_timezone)::date);
  exception when invalid_parameter_value then
    raise exception using
      errcode = '22023',
      message = pg_catalog.format('unknown time zone %L', p_timezone),
      hint = 'Use an IANA name such as Asia/Almaty.';
  end;
  v_from := coalesce(p_from, v_to - 29);
  if p_group_by not in ('day', 'targetologist', 'team') then
    raise exception using
      errcode = '22023',
      message = pg_catalog.format('p_group_by must be day, targetologist or team, not %L', p_group_by),
      hint = 'Use p_group_by => ''day'' (default), ''targetologist'' or ''team''.';
  end if;
  if v_from > v_to or v_to - v_from > 366 then
    raise exception using
      errcode = '22023',
      message = pg_catalog.format('invalid period %s .. %s', v_from, v_to),
      hint = 'p_from must not be after p_to, and a period spans at most 367 days.';
  end if;
  v_start := v_from::timestamp at time zone p_timezone;
  v_end := (v_to + 1)::timestamp at time zone p_timezone;

  -- Narrow to UTM sources up front where we can: RLS would filter the same rows, but an
  -- explicit filter lets the planner use the (utm_source, created_at) index.
  if p_targetologist_id is not null then
    v_sources := array(
      select s.utm_source from public.traffic_user_utm_sources as s where s.user_id = p_targetologist_id
    );
  elsif p_team_id is not null then
    v_sources := array(
      select s.utm_source
      from public.traffic_user_utm_sources as s
      join public.traffic_users as u on s.user_id = u.id
      where u.team_id = p_team_id
    );
  elsif v_uid is not null and not exists (
    select 1 from public.app_user_roles as r
    where r.user_id = v_uid and r.role in ('admin', 'sales_manager')
  ) then
    v_sources := array(select s.utm_source from public.traffic_user_utm_sources as s where s.user_id = v_uid);
  end if;

  if p_timezone = 'Asia/Almaty' and not p_live then
    -- the pre-counted path (traffic_lead_daily_stats is kept per Asia/Almaty day)
    return query
    with counted as (
      select
        case p_group_by
          when 'day' then pg_catalog.to_char(st.day, 'YYYY-MM-DD')
          when 'targetologist' then coalesce(o.user_id::text, 'unattributed')
          else coalesce(u.team_id::text, 'unattributed')
        end as bucket,
        case p_group_by
          when 'day' then pg_catalog.to_char(st.day, 'YYYY-MM-DD')
          when 'targetologist' then coalesce(u.full_name, 'unattributed')
          else coalesce(t.name, 'unattributed')
        end as label,
        st.stage,
        st.leads
      from public.traffic_lead_daily_stats as st
      left join public.traffic_user_utm_sources as o on nullif(st.utm_source, '') = o.utm_source
      left join public.traffic_users as u on o.user_id = u.id
      left join public.traffic_teams as t on u.team_id = t.id
      where
        st.day between v_from and v_to
        and st.leads <> 0
        and (v_sources is null or st.utm_source = any(v_sources))
        and (p_targetologist_id is null or o.user_id = p_targetologist_id)
        and (p_team_id is null or u.team_id = p_team_id)
    ),

    per_stage as (
      select c.bucket, pg_catalog.min(c.label) as label, c.stage, pg_catalog.sum(c.leads)::bigint as n
      from counted as c
      group by c.bucket, c.stage
    ),

    per_bucket as (
      select
        p.bucket,
        pg_catalog.min(p.label) as label,
        coalesce(pg_catalog.sum(p.n) filter (where p.stage = ''), 0)::bigint as leads,
        coalesce(pg_catalog.jsonb_object_agg(p.stage, p.n) filter (where p.stage <> ''), '{}'::jsonb) as stages
      from per_stage as p
      group by p.bucket
    )

    select
      b.bucket,
      b.label,
      b.leads,
      b.stages,
      coalesce(
        (
          select
            pg_catalog.jsonb_object_agg(
              f.a || '->' || f.b,
              pg_catalog.round(coalesce((b.stages ->> f.b)::numeric, 0) / (b.stages ->> f.a)::numeric, 4)
            )
          from (
            select v_funnel[i] as a, v_funnel[i + 1] as b
            from pg_catalog.generate_series(1, pg_catalog.array_length(v_funnel, 1) - 1) as i
          ) as f
          where (b.stages ->> f.a)::numeric > 0
        ),
        '{}'::jsonb
      ) as conversion
    from per_bucket as b
    where b.leads > 0
    order by b.bucket;
    return;
  end if;

  -- the live path: any time zone, straight from traffic_leads
  return query
  with cohort as (
    select
      case p_group_by
        when 'day' then pg_catalog.to_char(l.created_at at time zone p_timezone, 'YYYY-MM-DD')
        when 'targetologist' then coalesce(s.user_id::text, 'unattributed')
        else coalesce(u.team_id::text, 'unattributed')
      end as bucket,
      case p_group_by
        when 'day' then pg_catalog.to_char(l.created_at at time zone p_timezone, 'YYYY-MM-DD')
        when 'targetologist' then coalesce(u.full_name, 'unattributed')
        else coalesce(t.name, 'unattributed')
      end as label,
      l.stages
    from public.traffic_leads as l
    left join public.traffic_user_utm_sources as s on l.utm_source = s.utm_source
    left join public.traffic_users as u on s.user_id = u.id
    left join public.traffic_teams as t on u.team_id = t.id
    where
      l.merged_into is null
      and l.created_at >= v_start
      and l.created_at < v_end
      and (v_sources is null or l.utm_source = any(v_sources))
      and (p_targetologist_id is null or s.user_id = p_targetologist_id)
      and (p_team_id is null or u.team_id = p_team_id)
  ),

  totals as (
    select c.bucket, pg_catalog.min(c.label) as label, pg_catalog.count(*) as leads
    from cohort as c
    group by c.bucket
  ),

  per_stage as (
    select c.bucket, st.stage, pg_catalog.count(*) as n
    from cohort as c
    cross join lateral pg_catalog.unnest(c.stages) as st (stage)
    group by c.bucket, st.stage
  ),

  stage_json as (
    select p.bucket, pg_catalog.jsonb_object_agg(p.stage, p.n) as stages
    from per_stage as p
    group by p.bucket
  )

  select
    tot.bucket,
    tot.label,
    tot.leads,
    coalesce(sj.stages, '{}'::jsonb) as stages,
    coalesce(
      (
        select
          pg_catalog.jsonb_object_agg(
            f.a || '->' || f.b,
            pg_catalog.round(
              coalesce((sj.stages ->> f.b)::numeric, 0) / (sj.stages ->> f.a)::numeric, 4
            )
          )
        from (
          select v_funnel[i] as a, v_funnel[i + 1] as b
          from pg_catalog.generate_series(1, pg_catalog.array_length(v_funnel, 1) - 1) as i
        ) as f
        where (sj.stages ->> f.a)::numeric > 0
      ),
      '{}'::jsonb
    ) as conversion
  from totals as tot
  left join stage_json as sj on tot.bucket = sj.bucket
  order by tot.bucket;
end;
$$;

comment on function public.traffic_dashboard(date, date, text, uuid, uuid, text, boolean) is
'Leads created per day / targetologist / team in [p_from, p_to] (local dates in p_timezone, default the '
'last 30 days): count, leads per journey stage reached, and conversion between consecutive funnel stages. '
'Runs with the caller''s rights: RLS scopes it (a targetologist sees only their attributed leads). '
'Reads the pre-counted traffic_lead_daily_stats for Asia/Almaty days; p_live => true (or another time '
'zone) counts traffic_leads directly.';

revoke all on function public.traffic_dashboard(date, date, text, uuid, uuid, text, boolean) from public, anon;
grant execute on function public.traffic_dashboard(
  date, date, text, uuid, uuid, text, boolean
) to authenticated, service_role;
