"""Noise learning and tallies: a random request id is noise, a changed price is a difference at
exactly `price`, judgement is retroactive, and memory stays bounded."""

from __future__ import annotations

import json
import uuid
from typing import Any

from shoal.differ.aggregate import OTHER_ENDPOINT, OTHER_FIELDS, Aggregator, Outcome, Sample
from shoal.differ.compare import CompareRules, Reply

JSON = (("content-type", "application/json"),)


def reply(body: Any, status: int = 200) -> Reply:
    return Reply(status, JSON, json.dumps(body).encode())


def priced(price: float, random_id: bool = True) -> Reply:
    body: dict[str, Any] = {"sku": "a-1", "price": price, "items": [{"n": 1}, {"n": 2}]}
    if random_id:
        body["requestId"] = uuid.uuid4().hex
    return reply(body)


def sample(primary: Reply, secondary: Reply, candidate: Reply, path: str = "/price") -> Sample:
    return Sample(f"GET {path}", f"GET {path}?q=1", primary, secondary, candidate)


def test_random_request_id_is_learned_as_noise() -> None:
    aggregator = Aggregator()
    outcomes = [
        aggregator.record(sample(priced(19.99), priced(19.99), priced(19.99))) for _ in range(50)
    ]
    assert set(outcomes) == {Outcome.NOISY}
    status = aggregator.status()
    assert (status.compared, status.differing, status.noisy) == (50, 0, 50)
    assert status.diff_rate == 0.0
    (endpoint,) = status.endpoints
    assert endpoint.endpoint == "GET /price"
    assert [n.path for n in endpoint.noise] == ["requestId"]
    assert endpoint.noise[0].count == 50
    assert endpoint.fields == []


def test_changed_price_is_a_difference_at_exactly_price() -> None:
    aggregator = Aggregator()
    for _ in range(40):
        outcome = aggregator.record(sample(priced(19.99), priced(19.99), priced(20.0)))
        assert outcome is Outcome.DIFFERING
    status = aggregator.status()
    assert (status.compared, status.differing, status.diff_rate) == (40, 40, 1.0)
    (endpoint,) = status.endpoints
    assert [f.path for f in endpoint.fields] == ["price"]  # requestId is noise, not listed
    field = endpoint.fields[0]
    assert field.count == 40
    assert field.example is not None
    assert (field.example.primary, field.example.candidate) == ("19.99", "20.0")
    assert field.example.path == "price"
    assert field.example.request == "GET /price?q=1"
    assert '"price": 19.99' in field.example.primary_body
    assert '"price": 20.0' in field.example.candidate_body


def test_identical_deterministic_answers_are_equal() -> None:
    aggregator = Aggregator()
    same = reply({"a": 1})
    assert aggregator.record(sample(same, same, same)) is Outcome.EQUAL
    status = aggregator.status()
    assert (status.compared, status.differing, status.noisy) == (1, 0, 0)


def test_noise_is_judged_retroactively() -> None:
    # A field that is only sometimes different between primaries: the candidate's early
    # differences there are reclassified as noise once the primaries are seen to disagree.
    aggregator = Aggregator()
    stable, other = reply({"t": 1}), reply({"t": 2})
    assert aggregator.record(sample(stable, stable, other)) is Outcome.DIFFERING
    assert aggregator.status().differing == 1
    assert aggregator.record(sample(stable, other, stable)) is Outcome.EQUAL
    status = aggregator.status()
    assert (status.differing, status.noisy) == (0, 1)


def test_a_rare_primary_disagreement_does_not_hide_a_real_difference() -> None:
    aggregator = Aggregator()
    aggregator.record(sample(priced(19.99, False), priced(19.98, False), priced(19.99, False)))
    for _ in range(30):
        aggregator.record(sample(priced(19.99, False), priced(19.99, False), priced(20.0, False)))
    status = aggregator.status()
    assert status.differing == 30
    assert [f.path for f in status.endpoints[0].fields] == ["price"]


def test_noise_in_array_elements_is_learned_by_shape() -> None:
    aggregator = Aggregator()

    def listing() -> Reply:
        return reply({"items": [{"id": i, "trace": uuid.uuid4().hex} for i in range(3)]})

    for _ in range(10):
        aggregator.record(sample(listing(), listing(), listing(), "/items"))
    endpoint = aggregator.status().endpoints[0]
    assert [n.path for n in endpoint.noise] == ["items[*].trace"]
    assert endpoint.differing == 0


def test_noise_is_per_endpoint() -> None:
    aggregator = Aggregator()
    for _ in range(5):
        aggregator.record(sample(priced(1), priced(1), priced(1), "/a"))
    aggregator.record(sample(priced(1, False), priced(1, False), priced(1), "/b"))
    status = aggregator.status()
    by_endpoint = {e.endpoint: e for e in status.endpoints}
    assert by_endpoint["GET /a"].differing == 0
    assert by_endpoint["GET /b"].differing == 1  # requestId appeared only in the candidate
    assert [f.path for f in by_endpoint["GET /b"].fields] == ["requestId"]


def test_primary_failure_is_not_compared_and_candidate_failure_differs() -> None:
    aggregator = Aggregator()
    good = reply({"a": 1})
    failed = Reply(0, error="ConnectionRefusedError")
    assert aggregator.record(sample(failed, good, good)) is Outcome.NOT_COMPARED
    assert aggregator.record(sample(good, good, failed)) is Outcome.DIFFERING
    status = aggregator.status()
    assert (status.compared, status.errors, status.candidate_errors) == (1, 1, 1)
    assert status.endpoints[0].fields[0].path == ":status"


def test_rules_apply() -> None:
    aggregator = Aggregator(CompareRules.build(ignore_fields=["price"]))
    aggregator.record(sample(priced(1), priced(1), priced(2)))
    assert aggregator.status().differing == 0


def test_endpoints_are_bounded() -> None:
    aggregator = Aggregator(max_endpoints=3)
    same = reply({})
    for number in range(10):
        aggregator.record(sample(same, same, same, f"/p{number}"))
    names = [e.endpoint for e in aggregator.status().endpoints]
    assert len(names) == 4 and OTHER_ENDPOINT in names
    assert aggregator.status().compared == 10


def test_signatures_are_bounded_and_still_counted() -> None:
    aggregator = Aggregator(max_signatures=2)
    base = {f"f{i}": 0 for i in range(6)}
    for i in range(6):
        aggregator.record(sample(reply(base), reply(base), reply({**base, f"f{i}": 1})))
    endpoint = aggregator.endpoints["GET /price"]
    assert len(endpoint.signatures) == 2
    assert aggregator.status().differing == 6


def test_field_shapes_are_bounded_per_endpoint() -> None:
    aggregator = Aggregator(max_fields=2)
    base = {f"f{i}": 0 for i in range(5)}
    aggregator.record(sample(reply(base), reply(base), reply({k: 1 for k in base})))
    fields = {f.path: f.count for f in aggregator.status().endpoints[0].fields}
    assert fields == {"f0": 1, "f1": 1, OTHER_FIELDS: 1}  # one sample: counted once there


def test_maps_keyed_by_ids_share_one_shape() -> None:
    aggregator = Aggregator()
    for user in range(20):
        differing = reply({"users": {str(1000 + user): {"name": "b"}}})
        same = reply({"users": {str(1000 + user): {"name": "a"}}})
        aggregator.record(sample(same, same, differing))
    fields = aggregator.status().endpoints[0].fields
    assert [(f.path, f.count) for f in fields] == [("users.*.name", 20)]
    assert fields[0].example is not None and fields[0].example.path == 'users["1000"].name'


def test_top_fields_are_limited_and_sorted() -> None:
    aggregator = Aggregator(top_fields=2)
    base = {"a": 0, "b": 0, "c": 0}
    aggregator.record(sample(reply(base), reply(base), reply({"a": 1, "b": 1, "c": 1})))
    aggregator.record(sample(reply(base), reply(base), reply({"a": 0, "b": 1, "c": 1})))
    aggregator.record(sample(reply(base), reply(base), reply({"a": 0, "b": 0, "c": 1})))
    fields = aggregator.status().endpoints[0].fields
    assert [(f.path, f.count) for f in fields] == [("c", 3), ("b", 2)]


def test_seed_continues_an_older_report() -> None:
    first = Aggregator()
    for _ in range(5):
        first.record(sample(priced(1), priced(1), priced(2)))
    first.record_dropped(3)
    restarted = Aggregator()
    restarted.seed(first.status())
    restarted.record(sample(priced(1), priced(1), priced(2)))
    status = restarted.status()
    assert (status.compared, status.differing, status.dropped) == (6, 6, 3)
    endpoint = status.endpoints[0]
    assert [(f.path, f.count) for f in endpoint.fields] == [("price", 6)]
    assert [n.path for n in endpoint.noise] == ["requestId"]


def test_changes_counter_moves_on_every_record() -> None:
    aggregator = Aggregator()
    before = aggregator.changes
    aggregator.record(sample(reply({}), reply({}), reply({})))
    aggregator.record_skipped()
    assert aggregator.changes == before + 2
    assert aggregator.status().skipped == 1
