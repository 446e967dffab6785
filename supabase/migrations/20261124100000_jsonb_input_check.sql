-- A test of whether a json text can be read as jsonb, for the consolidation.
--
-- Issue 4 (bad input is kept raw, never stops the run): a Landing column of type json
-- accepts text that jsonb refuses: a lone \ud800-\udfff escape (22P02 / 22P05), a number
-- beyond numeric's range such as 1e1000000 (22003). One such value made the whole
-- consolidation fail. `onai-db consolidate` now asks this function about the values of
-- json-typed source columns (never about jsonb ones, which are valid by construction)
-- and imports a value it refuses as {"legacy_json_text": "<the text>"}, counted in the
-- report. PostgreSQL 15 has no pg_input_is_valid, so the test is a cast in an exception
-- block: a subtransaction per call, which is why the caller only asks about values a
-- cheap pattern cannot clear.

create function private.jsonb_accepts(p_text text)
returns boolean
language plpgsql
immutable
strict
parallel safe
set search_path = ''
as $$
begin
  perform p_text::jsonb;
  return true;
exception
  when invalid_text_representation
    or untranslatable_character
    or character_not_in_repertoire
    or numeric_value_out_of_range
    or invalid_parameter_value
    or program_limit_exceeded then
    return false;
end;
$$;

comment on function private.jsonb_accepts(text) is
'True when the text can be read as jsonb, false when jsonb refuses it (lone unicode '
'surrogate escapes, numbers beyond numeric''s range, invalid json); NULL for NULL. Used by '
'the consolidation to keep such legacy json values as text instead of failing the run.';

revoke all on function private.jsonb_accepts(text) from public;
