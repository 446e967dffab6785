-- Development seed: the Traffic Dashboard people from seed 000 (five users: one admin,
-- four targetologists), one sales manager, two teams and their UTM sources.
-- Deterministic ids, no secrets (no passwords: sign-in is Supabase Auth's business).
-- Applied by `onai-db demo` on the local stack; never pushed to a hosted project
-- (`supabase db push` runs seeds only with --include-seed).

insert into auth.users (
  id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at
)
values
(
  '10000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated', 'admin@onai.academy', now(),
  '{"provider":"email","providers":["email"]}', '{}', now(), now()
),
(
  '10000000-0000-4000-8000-000000000002', 'authenticated', 'authenticated', 'arystan@onai.academy', now(),
  '{"provider":"email","providers":["email"]}', '{}', now(), now()
),
(
  '10000000-0000-4000-8000-000000000003', 'authenticated', 'authenticated', 'muha@onai.academy', now(),
  '{"provider":"email","providers":["email"]}', '{}', now(), now()
),
(
  '10000000-0000-4000-8000-000000000004', 'authenticated', 'authenticated', 'traft4@onai.academy', now(),
  '{"provider":"email","providers":["email"]}', '{}', now(), now()
),
(
  '10000000-0000-4000-8000-000000000005', 'authenticated', 'authenticated', 'kenesary@onai.academy', now(),
  '{"provider":"email","providers":["email"]}', '{}', now(), now()
),
(
  '10000000-0000-4000-8000-000000000006', 'authenticated', 'authenticated', 'sales@onai.academy', now(),
  '{"provider":"email","providers":["email"]}', '{}', now(), now()
)
on conflict (id) do nothing;

insert into public.app_user_roles (user_id, role)
values
('10000000-0000-4000-8000-000000000001', 'admin'),
('10000000-0000-4000-8000-000000000002', 'targetologist'),
('10000000-0000-4000-8000-000000000003', 'targetologist'),
('10000000-0000-4000-8000-000000000004', 'targetologist'),
('10000000-0000-4000-8000-000000000005', 'targetologist'),
('10000000-0000-4000-8000-000000000006', 'sales_manager')
on conflict do nothing;

insert into public.traffic_teams (id, name)
values
('20000000-0000-4000-8000-000000000001', 'Алматы'),
('20000000-0000-4000-8000-000000000002', 'Астана')
on conflict (id) do nothing;

insert into public.traffic_users (id, email, full_name, team_id)
values
('10000000-0000-4000-8000-000000000001', 'admin@onai.academy', 'Admin', null),
('10000000-0000-4000-8000-000000000002', 'arystan@onai.academy', 'Арыстан', '20000000-0000-4000-8000-000000000001'),
('10000000-0000-4000-8000-000000000003', 'muha@onai.academy', 'Мухаммед', '20000000-0000-4000-8000-000000000001'),
('10000000-0000-4000-8000-000000000004', 'traft4@onai.academy', 'Трафт', '20000000-0000-4000-8000-000000000002'),
('10000000-0000-4000-8000-000000000005', 'kenesary@onai.academy', 'Кенесары', '20000000-0000-4000-8000-000000000002'),
('10000000-0000-4000-8000-000000000006', 'sales@onai.academy', 'Sales Manager', null)
on conflict (id) do nothing;

insert into public.traffic_user_utm_sources (utm_source, user_id)
values
('fb_arystan', '10000000-0000-4000-8000-000000000002'),
('ig_arystan', '10000000-0000-4000-8000-000000000002'),
('fb_muha', '10000000-0000-4000-8000-000000000003'),
('tiktok_muha', '10000000-0000-4000-8000-000000000003'),
('fb_traft4', '10000000-0000-4000-8000-000000000004'),
('fb_kenesary', '10000000-0000-4000-8000-000000000005'),
('ig_kenesary', '10000000-0000-4000-8000-000000000005')
on conflict (utm_source) do nothing;
