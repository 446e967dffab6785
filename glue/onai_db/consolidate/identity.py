"""Identity plan: which staged rows are one person, in which order they fill gaps.

The rows are read once (ord, normalized phone, normalized email) and replayed in
memory with exactly the rules of ``find_or_create_unified_lead``: a row whose
identifiers are all new starts a lead; a row matching one lead joins it; a row whose
phone and email point at two leads merges them into the older (its creator came
first); identifiers stay with the lead (and follow merges). The result per row is the
person (``comp`` = ord of the surviving lead's first row), its precedence when filling
gaps (``fill_rank``: winner's rows, then the loser's, then later rows, as merge_leads
and the fill-gap update apply them) and its commit batch (whole persons per batch).
Live leads of the target that hold staged identifiers take part in the replay from the
start, older than every row, so a person whose rows reach one keeps it
(``existing_leads``) and its gaps are filled in the order the replay meets the rows. The
plan is written back with one COPY.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from .backup import Progress

PLAN_ROWS_SQL = """
copy (
  select s.ord, s.phone_n, s.email_n
  from private.consolidation_stage_leads as s
  where s.problem is null
    and not exists (
      select 1 from private.legacy_lead_map as m where m.source_table = s.src and m.legacy_id = s.legacy_id
    )
  order by s.ord
) to stdout
"""

# the target's live leads holding the staged identifiers (own or secondary), each with its rank
# by age (oldest first: several existing leads of one person merge into the oldest)
EXISTING_SQL = """
copy (
  with ids as (
    select distinct 'phone' as kind, s.phone_n as value from private.consolidation_stage_leads as s
    where s.phone_n is not null and s.problem is null
    union
    select distinct 'email', s.email_n from private.consolidation_stage_leads as s
    where s.email_n is not null and s.problem is null
  ),
  found as (
    select ids.kind, ids.value, private.live_lead(i.lead_id) as lead_id
    from ids join private.traffic_lead_identifiers as i on i.kind = ids.kind and i.value = ids.value
    union
    select 'phone', l.phone_normalized, l.id from public.traffic_leads as l
    join ids on ids.kind = 'phone' and ids.value = l.phone_normalized
    where l.merged_into is null
    union
    select 'email', l.email_normalized, l.id from public.traffic_leads as l
    join ids on ids.kind = 'email' and ids.value = l.email_normalized
    where l.merged_into is null
  )
  select f.kind, f.value, f.lead_id, dense_rank() over (order by l.created_at, l.lead_no, l.id)
  from found as f join public.traffic_leads as l on l.id = f.lead_id
) to stdout
"""


@dataclass
class Plan:
    rows: int
    persons: int
    batches: int
    persons_with_existing_lead: int


def _find(parent: dict[int, int], x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        parent[x], x = root, parent[x]
    return root


def build_plan(conn: psycopg.Connection, batch_size: int, progress: Progress) -> Plan:
    rows: list[tuple[int, str | None, str | None]] = []
    with conn.cursor() as cur, cur.copy(PLAN_ROWS_SQL) as cp:
        for ord_, phone, email in cp.rows():
            rows.append((int(ord_), phone, email))
    found: list[tuple[str, str, int]] = []
    with conn.cursor() as cur, cur.copy(EXISTING_SQL) as cp:
        for kind, value, lead, rank in cp.rows():
            found.append((("p:" if kind == "phone" else "e:") + value, lead, int(rank)))
    progress("identity", 1, 3)

    # Replay in memory. Sim leads are keyed by their creator's ord (older = smaller); the
    # target's existing leads are there from the start, with keys below every ord (oldest
    # first), so they win every merge: a person whose rows reach one keeps it and is filled
    # by the rows in the order the replay meets them (the lead's own values first).
    parent: dict[int, int] = {}
    seq: dict[int, list[int]] = {}
    ident: dict[str, int] = {}
    existing_of: dict[int, set[str]] = {}
    ranks = max((rank for _, _, rank in found), default=0)

    def merge(lead: int, loser: int) -> None:
        parent[loser] = lead
        seq[lead].extend(seq.pop(loser))
        existing_of.setdefault(lead, set()).update(existing_of.pop(loser, set()))

    for key, lead_id, rank in found:
        node = rank - ranks - 1
        if node not in parent:
            parent[node] = node
            seq[node] = []
            existing_of[node] = {lead_id}
        if key in ident:  # one identifier held by several existing leads: one person
            a, b = sorted({_find(parent, ident[key]), _find(parent, node)})
            if a != b:
                merge(a, b)
        else:
            ident[key] = node
    for ord_, phone, email in rows:
        keys = [k for k in (phone and "p:" + phone, email and "e:" + email) if k]
        leads = {_find(parent, ident[k]) for k in keys if k in ident}
        if not leads:
            lead = ord_
            parent[lead] = lead
            seq[lead] = []
        elif len(leads) == 1:
            lead = leads.pop()
        else:
            lead, loser = sorted(leads)
            merge(lead, loser)
        seq[lead].append(ord_)
        for k in keys:
            ident.setdefault(k, lead)
    progress("identity", 1, 3)

    # a person with an existing lead is keyed by its first row's ord, like any other
    persons = sorted((order[0] if root < 0 else root, root) for root, order in seq.items() if order)
    batch = 0
    in_batch = 0
    with_existing = 0
    with (
        conn.cursor() as cur,
        cur.copy(
            "copy private.consolidation_stage_plan (ord, comp, comp_size, fill_rank, batch_no, creator, existing_leads)"
            " from stdin"
        ) as cp,
    ):
        for comp, root in persons:
            order = seq[root]
            ex = existing_of.get(root, set())
            ex_literal = "{" + ",".join(sorted(ex)) + "}" if ex else None
            with_existing += bool(ex)
            for rank, ord_ in enumerate(order):
                cp.write_row((ord_, comp, len(order), rank, batch, ord_ == comp and not ex, ex_literal))
            in_batch += len(order)
            if in_batch >= batch_size:
                batch += 1
                in_batch = 0
    conn.execute("analyze private.consolidation_stage_plan")
    progress("identity", 1, 3)
    return Plan(
        rows=len(rows),
        persons=len(persons),
        batches=batch + (1 if in_batch else 0),
        persons_with_existing_lead=with_existing,
    )
