"""docs/ocpp201-conformance.md is current, and every OCTT case is covered by a test or says why not."""

from __future__ import annotations

from tests.ocpp201 import conformance


def test_conformance_doc_is_current():
    assert conformance.DOC.read_text() == conformance.render(), \
        "docs/ocpp201-conformance.md is stale: run `python -m tests.ocpp201.conformance`"


def test_every_core_mandatory_case_is_covered_by_a_test():
    covered = conformance.coverage()
    missing = [c.id for c in conformance.cases() if c.profile == "Core" and c.mandatory and c.id not in covered]
    assert missing == []


def test_every_case_has_a_test_or_a_reason():
    covered, reasons = conformance.coverage(), conformance.reasons()
    known = {c.id for c in conformance.cases()}
    assert [c.id for c in conformance.cases() if c.id not in covered and c.id not in reasons] == []
    assert sorted(set(reasons) - known) == [], "not_covered.yaml names cases the OCTT list does not have"
    assert sorted(set(reasons) & set(covered)) == [], "a covered case still has a reason in not_covered.yaml"


def test_the_case_list_copy_matches_the_shared_notes():
    if conformance.CASES.exists():
        assert conformance.CASES_IN_REPO.read_text() == conformance.CASES.read_text()
