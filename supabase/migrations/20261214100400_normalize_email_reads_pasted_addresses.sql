-- private.normalize_email reads an address as it is pasted: after a 'mailto:', before a
-- sentence's full stop or comma, and inside the bidirectional marks a messenger adds.
--
-- Found by the identity review: 'aigul.t@mail.kz.' or 'aigul.t@mail.kz,' (copied out of a
-- sentence), 'mailto:aigul.t@mail.kz' (a link's address copied) and an address wrapped in
-- U+202A ... U+202C or U+200E were no identifier, so the person's next submission made a
-- lead of its own (no_identifier) beside the one of 'aigul.t@mail.kz'. A phone was read in
-- all these forms already (tel:, trailing punctuation, the marks since 20261212100100).
-- Now, after the blanks and <>"' are trimmed as before: the zero-width and bidirectional
-- marks are dropped wherever they are (checked only for input with a character outside
-- ASCII, as such input is rare), a leading 'mailto:' (any case) is dropped, and a trailing
-- . , ; : (and any <>"' then left) is trimmed. An address never ends with one of them, so
-- no address that was an identifier changes. Otherwise as 20261212100300: ASCII only,
-- A-Z lowered by translate().

create or replace function private.normalize_email(p_email text)
returns text
language plpgsql
immutable
strict
parallel safe
set search_path = ''
as $$
declare
  -- the RPC's blanks (find_or_create_unified_lead's c_blank), and the <>"' of a pasted address
  c_trim constant text :=
    U&' \0009\000A\000B\000C\000D\0085\00A0\1680\2000\2001\2002\2003\2004\2005\2006\2007\2008\2009\200A\200B\2028\2029\202F\205F\3000\FEFF<>"''';
  v text := pg_catalog.btrim(p_email, c_trim);
begin
  if pg_catalog.octet_length(v) <> pg_catalog.length(v) then
    -- zero-width characters, the soft hyphen and the bidirectional marks (normalize_phone's)
    v := pg_catalog.translate(v, U&'\200B\200C\200D\2060\FEFF\00AD\200E\200F\202A\202B\202C\202D\202E\2066\2067\2068\2069', '');
    v := pg_catalog.btrim(v, c_trim);
  end if;
  if pg_catalog.translate(pg_catalog.left(v, 7), 'MAILTO', 'mailto') = 'mailto:' then
    v := pg_catalog.substr(v, 8);
  end if;
  v := pg_catalog.rtrim(v, '.,;:<>"''');
  if v ~ '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$'
    and pg_catalog.length(v) <= 254
    and pg_catalog.strpos(v, '..') = 0
    and v !~ '(^\.|\.@|@-|-\.|\.-|-$)' then
    return pg_catalog.translate(v, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
  end if;
  return null;
end;
$$;

comment on function private.normalize_email(text) is
'Email identity: trimmed (of the blanks find_or_create_unified_lead trims, and <>"''), without '
'zero-width and bidirectional marks, a leading mailto: and a trailing . , ; :, and A-Z lower-cased '
'when it looks like a deliverable ASCII address, else NULL (an invalid or non-ASCII email is kept '
'raw on the lead but is not an identifier).';
