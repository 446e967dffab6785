"""Index hygiene (issue 3, item 8; STYLE: index every column a policy filters on).

Read from the catalog of the migrated test database, so a new migration that adds a policy
on an unindexed column, or an index another one already covers, fails here.
"""

from __future__ import annotations

import uuid

import psycopg

from support.cast import Cast
from support.postgrest import PostgrestSession

# Columns of a policy's own table in its USING / WITH CHECK expressions: the Var nodes of the
# stored expression tree with varno 1 (the table) at query level 0 (not a subquery's column).
POLICY_COLUMNS = r"""
select distinct p.polrelid::regclass::text as tbl, a.attname::text as col,
  exists (
    select 1 from pg_catalog.pg_index as i where i.indrelid = p.polrelid and i.indkey[0] = a.attnum
  ) as leads_an_index
from pg_catalog.pg_policy as p
cross join lateral pg_catalog.regexp_matches(
  coalesce(p.polqual::text, '') || coalesce(p.polwithcheck::text, ''),
  '\{VAR :varno 1 :varattno (\d+) :vartype \d+ :vartypmod -?\d+ :varcollid \d+ :varlevelsup 0 ', 'g'
) as m
join pg_catalog.pg_attribute as a on a.attrelid = p.polrelid and a.attnum = m[1]::int
"""

# A non-unique btree index whose key columns are a prefix of another btree index's keys on the
# same table, with the same predicate and no expressions, answers nothing the other cannot.
REDUNDANT_INDEXES = """
select a.indexrelid::regclass::text as redundant, b.indexrelid::regclass::text as covered_by
from pg_catalog.pg_index as a
join pg_catalog.pg_index as b on a.indrelid = b.indrelid and a.indexrelid <> b.indexrelid
join pg_catalog.pg_class as t on a.indrelid = t.oid
join pg_catalog.pg_class as ai on a.indexrelid = ai.oid
join pg_catalog.pg_class as bi on b.indexrelid = bi.oid
where
  t.relnamespace::regnamespace::text in ('public', 'private')
  and not a.indisunique
  and a.indexprs is null and b.indexprs is null
  and coalesce(a.indpred::text, '') = coalesce(b.indpred::text, '')
  and ai.relam = bi.relam
  and a.indnkeyatts <= b.indnkeyatts
  and (a.indkey::int2 [])[0:a.indnkeyatts - 1] = (b.indkey::int2 [])[0:a.indnkeyatts - 1]
"""


def test_every_column_a_policy_filters_on_leads_an_index(owner_conn: psycopg.Connection) -> None:
    rows = owner_conn.execute(POLICY_COLUMNS).fetchall()
    found = {(tbl, col) for tbl, col, _ in rows}
    # the reading of the expression trees finds the policies' columns (not vacuous)
    assert {
        ("traffic_leads", "utm_source"),
        ("traffic_lead_journey", "lead_id"),
        ("app_user_roles", "user_id"),
    } <= found
    unindexed = sorted((tbl, col) for tbl, col, indexed in rows if not indexed)
    assert unindexed == [], f"policy columns without an index that leads with them: {unindexed}"


def test_no_index_duplicates_another(owner_conn: psycopg.Connection) -> None:
    assert owner_conn.execute(REDUNDANT_INDEXES).fetchall() == []


def test_the_redundancy_check_finds_a_redundant_index(owner_conn: psycopg.Connection) -> None:
    """The check above is not vacuous: an index covered by a wider one is reported."""
    with owner_conn.transaction(force_rollback=True):
        owner_conn.execute("create index probe_wider on public.traffic_leads (created_at, id)")
        found = owner_conn.execute(REDUNDANT_INDEXES).fetchall()
    assert found == [("traffic_leads_created_at_idx", "probe_wider")]


def test_merge_chain_lookups_use_the_partial_merged_into_index(owner_conn: psycopg.Connection) -> None:
    """The index holds merged leads only, and the lookups of a merge still use it: the planner
    proves `merged_into = $1` implies `merged_into is not null` (a generic plan, as in
    merge_leads and the foreign key check)."""
    pred = owner_conn.execute(
        "select pg_catalog.pg_get_expr(indpred, indrelid) from pg_catalog.pg_index"
        " where indexrelid = 'public.traffic_leads_merged_into_idx'::regclass"
    ).fetchone()
    assert pred == ("(merged_into IS NOT NULL)",)
    with owner_conn.transaction(force_rollback=True):
        owner_conn.execute("set local enable_seqscan = off")
        owner_conn.execute("set local plan_cache_mode = force_generic_plan")
        # the other index with the same predicate (on utm_source) would do with a filter, and
        # on an almost empty table it can cost the same: out of the way, the proof is what counts
        owner_conn.execute("drop index public.traffic_leads_merged_utm_source_idx")
        owner_conn.execute(
            "prepare merged_into_probe (uuid) as select id from public.traffic_leads where merged_into = $1"
        )
        plan = "\n".join(
            r[0] for r in owner_conn.execute("explain execute merged_into_probe (gen_random_uuid())")
        )
        owner_conn.execute("deallocate merged_into_probe")
    assert "traffic_leads_merged_into_idx" in plan and "Index Cond: (merged_into = $1)" in plan, plan


def _plan_nodes(node: dict) -> list[dict]:
    return [node] + [n for child in node.get("Plans", []) for n in _plan_nodes(child)]


def _leads_nodes(cur: psycopg.Cursor, query: str, params: tuple = ()) -> list[dict]:
    cur.execute("explain (format json) " + query, params)
    row = cur.fetchone()
    assert row is not None
    return [
        n
        for n in _plan_nodes(row["QUERY PLAN"][0]["Plan"])
        # a scan of the table, or a bitmap index scan (no relation name) of one of its indexes
        if n.get("Relation Name") == "traffic_leads" or n.get("Index Name", "").startswith("traffic_leads_")
    ]


def test_a_targetologist_reading_a_leads_journey_finds_their_leads_by_index(
    api: PostgrestSession, cast: Cast
) -> None:
    """The journey policy's lookup of the targetologist's leads (live and merged) can use an
    index: with sequential scans priced out, no plan node reads traffic_leads whole (the
    lookup once had no usable index: the only utm_source index covered live leads only)."""
    with api.probe(), api.request(cast.targetologist, "GET", "/lead_journey") as cur:
        cur.execute("set local enable_seqscan = off")
        nodes = _leads_nodes(cur, "select * from public.lead_journey where lead_id = %s", (uuid.uuid4(),))
    on_leads = [n["Node Type"] for n in nodes]
    assert on_leads, "the policy's lookup of traffic_leads is not in the plan"
    assert "Seq Scan" not in on_leads, on_leads


def _brief(nodes: list[dict]) -> list[tuple]:
    return [(n["Node Type"], n.get("Index Name"), n.get("Index Cond"), n.get("Filter")) for n in nodes]


def test_a_targetologists_documented_lead_reads_use_an_index(api: PostgrestSession, cast: Cast) -> None:
    """The counts the README gives a targetologist's screens look their leads up by index. RLS
    alone cannot: the policy is `staff OR utm_source = any(mine)`, and PostgreSQL uses no index
    for an OR with an arm no index can answer; so the request repeats the filter, as Supabase
    advises. With sequential scans priced out, the filtered counts have an index condition on
    utm_source (they fail if the live-leads utm_source index goes); the unfiltered count, for
    contrast, has none."""
    own = (["fb_arystan", "ig_arystan"],)
    with api.probe(), api.request(cast.targetologist, "GET", "/traffic_leads") as cur:
        cur.execute("set local enable_seqscan = off")
        filtered = [
            _leads_nodes(
                cur,
                "select count(*) from public.traffic_leads where utm_source = any(%s) and merged_into is null",
                own,
            ),
            _leads_nodes(
                cur, "select count(*) from public.traffic_lead_attribution where utm_source = any(%s)", own
            ),
        ]
        unfiltered = _leads_nodes(cur, "select count(*) from public.traffic_leads where merged_into is null")
    for nodes in filtered:
        assert nodes and all(n["Node Type"] != "Seq Scan" for n in nodes), _brief(nodes)
        assert any("utm_source" in n.get("Index Cond", "") for n in nodes), _brief(nodes)
    assert unfiltered and not any("utm_source" in n.get("Index Cond", "") for n in unfiltered), _brief(
        unfiltered
    )
