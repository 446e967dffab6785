"""The generator's self-checks catch what they are there for (found by mutation review: each
check could be narrowed and the suite, which only runs them on correct rules, still passed).
A phonenumbers upgrade relies on these checks to refuse a wrong rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from onai_db import types_gen
from onai_db.codegen import phone_metadata


def test_the_prefix_rule_check_covers_long_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the rule for 78 + 14 digits, a 16-digit national number keeps its 78."""
    rules = tuple(r for r in phone_metadata.CC7_PREFIX_RULES if r != r"78(?=\d{14}$)")
    assert len(rules) == len(phone_metadata.CC7_PREFIX_RULES) - 1
    monkeypatch.setattr(phone_metadata, "CC7_PREFIX_RULES", rules)
    wrong = phone_metadata.check_cc7_prefix_rules()
    assert wrong and all(len(k) == 16 and k.startswith("78") for k in wrong), wrong[:5]


def test_the_fast_step_check_covers_eleven_digit_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong hand-written step for 8 + 10 digits (the most common Kazakh input) is caught."""
    right = phone_metadata.nsn_by_length

    def broken(key: str) -> str:
        if len(key) == 11 and key.startswith("8"):
            return key[2:]
        return right(key)

    monkeypatch.setattr(phone_metadata, "nsn_by_length", broken)
    wrong = phone_metadata.check_nsn_by_length()
    assert wrong and all(len(k) == 11 and k.startswith("8") for k in wrong), wrong[:5]


def test_the_exact_prefix_check_catches_a_prefix_postgresql_could_cut_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Left as is, ``0(?:...)?`` lets PostgreSQL take a shorter prefix than re.match: the check
    must report every string with more than one possible prefix end, not only a different
    longest one."""
    monkeypatch.setattr(phone_metadata, "exact_prefix", lambda pattern: pattern)
    assert phone_metadata.check_exact_prefixes(samples=200) != []


def test_types_check_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(types_gen, "generate", lambda project_dir, url, schemas: "new\n")
    path = tmp_path / types_gen.TYPES_FILE
    assert types_gen.check(tmp_path, "", []).changed  # missing
    path.parent.mkdir(parents=True)
    path.write_text("old\n")
    assert types_gen.check(tmp_path, "", []).changed  # differs
    assert path.read_text() == "old\n"  # check never writes
    assert types_gen.write(tmp_path, "", []).changed and path.read_text() == "new\n"
    assert not types_gen.check(tmp_path, "", []).changed
    assert not types_gen.write(tmp_path, "", []).changed
