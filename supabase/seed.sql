-- Development seed: the Traffic Dashboard people from seed 000 (five users: one admin,
-- four targetologists), one sales manager, one Tripwire student, two teams, their UTM
-- sources and one Telegram group for lead notifications.
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
),
(
  '10000000-0000-4000-8000-000000000007', 'authenticated', 'authenticated', 'aigerim.student@example.kz', now(),
  '{"provider":"email","providers":["email"]}', '{"full_name":"Айгерим"}', now(), now()
)
on conflict (id) do nothing;

insert into public.app_user_roles (user_id, role)
values
('10000000-0000-4000-8000-000000000001', 'admin'),
('10000000-0000-4000-8000-000000000002', 'targetologist'),
('10000000-0000-4000-8000-000000000003', 'targetologist'),
('10000000-0000-4000-8000-000000000004', 'targetologist'),
('10000000-0000-4000-8000-000000000005', 'targetologist'),
('10000000-0000-4000-8000-000000000006', 'sales_manager'),
('10000000-0000-4000-8000-000000000007', 'student')
on conflict do nothing;

insert into public.traffic_teams (id, name)
values
('20000000-0000-4000-8000-000000000001', 'Team Almaty'),
('20000000-0000-4000-8000-000000000002', 'Team Astana')
on conflict (id) do nothing;

insert into public.traffic_users (id, email, full_name, team_id)
values
('10000000-0000-4000-8000-000000000001', 'admin@onai.academy', 'Admin', null),
('10000000-0000-4000-8000-000000000002', 'arystan@onai.academy', 'Arystan', '20000000-0000-4000-8000-000000000001'),
('10000000-0000-4000-8000-000000000003', 'muha@onai.academy', 'Muha', '20000000-0000-4000-8000-000000000001'),
('10000000-0000-4000-8000-000000000004', 'traft4@onai.academy', 'Traft', '20000000-0000-4000-8000-000000000002'),
('10000000-0000-4000-8000-000000000005', 'kenesary@onai.academy', 'Kenesary', '20000000-0000-4000-8000-000000000002'),
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

insert into public.telegram_groups (chat_id, group_type, bot, title)
values (-1001000000001, 'leads', 'leads', 'Лиды (demo)')
on conflict (chat_id, group_type) do nothing;
