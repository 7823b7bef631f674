"""The erasure request is read the way ingest reads a lead, and names nobody in errors."""

from __future__ import annotations

import pytest

from leadloop.topics import REGISTRY, TopicSpec
from leadloop_ingest.domain.erasure import InvalidSubject, subject_for, tombstone_topics
from leadloop_ingest.domain.identity import identity_key
from leadloop_ingest.domain.validation import normalise_email, normalise_phone

PEPPER = b"unit-pepper"


def test_normalised_like_ingest() -> None:
    s = subject_for(" Someone.X@Example.ORG ", "139-1234-5678", "cn")
    assert s.email == normalise_email("someone.x@example.org")
    assert s.phone == normalise_phone("+86 139 1234 5678", None) == "+8613912345678"
    keys = [
        identity_key(PEPPER, "email", "someone.x@example.org"),
        identity_key(PEPPER, "phone", "+8613912345678"),
    ]
    assert s.lookup_keys(PEPPER) == sorted(k for k in keys if k is not None)


def test_the_record_keys_match_no_dedupe_key() -> None:
    s = subject_for("a@example.com", "+8613912345678")
    assert set(s.record_keys(PEPPER)).isdisjoint(s.lookup_keys(PEPPER))
    assert subject_for("a@example.com", None).record_keys(PEPPER)[1] is None


@pytest.mark.parametrize(
    ("email", "phone", "region"),
    [
        (None, None, None),
        ("not-an-address", None, None),
        (None, "13912345678", None),  # no country code and no region
        (None, "12", "CN"),
    ],
)
def test_a_request_that_names_nobody_is_refused_without_echoing_it(
    email: str | None, phone: str | None, region: str | None
) -> None:
    with pytest.raises(InvalidSubject) as refused:
        subject_for(email, phone, region)
    for value in (email, phone):
        if value:
            assert value not in str(refused.value)


def test_tombstones_go_to_compacted_topics_keyed_by_a_lead_only() -> None:
    assert tombstone_topics(REGISTRY) == []  # crm.reps is keyed by rep_id
    extra = TopicSpec(
        name="people.x",
        key="lead_id",
        model=None,
        producers=("ingest",),
        consumers=("humans",),
        cleanup_policy="compact",
    )
    deleted = TopicSpec(
        name="people.y", key="lead_id", model=None, producers=("ingest",), consumers=("humans",)
    )
    assert tombstone_topics([*REGISTRY, extra, deleted]) == ["people.x"]
