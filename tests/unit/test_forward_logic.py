"""Pure parts of forward sync: record conversion, collapsing per key, lag decisions."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from dynamo2mongo.sync import policy, records
from dynamo2mongo.sync.echo import APPLIES, OVERRULED, LedgerEntry
from dynamo2mongo.mapping.canonical import content_hash
from dynamo2mongo.sync.lag import LagReport, LagWatch, lambda_lag
from dynamo2mongo.mapping import document_to_item

KEYS = ("pk", "sk")
AT = dt.datetime(2026, 11, 25, tzinfo=dt.timezone.utc)


def _record(event: str, seq: int, pk: str = "a", sk: str = "1", image: dict | None = None) -> dict:
    data = {"SequenceNumber": str(seq), "Keys": {"pk": {"S": pk}, "sk": {"N": sk}}, "ApproximateCreationDateTime": AT}
    if event != "REMOVE":
        data["NewImage"] = image or {"pk": {"S": pk}, "sk": {"N": sk}, "v": {"N": str(seq)}}
    return {"eventID": f"e{seq}", "eventName": event, "dynamodb": data}


def test_a_change_carries_the_forward_mark_and_keeps_the_item():
    image = {"pk": {"S": "a"}, "sk": {"N": "1"}, "blob": {"B": b"\x00\xff"}, "set": {"NS": ["1", "2.5"]}}
    change = records.to_change(_record("INSERT", 7, image=image), KEYS)
    mark = change.document["_ddb"]["sync"]
    assert mark == {"src": "dynamodb", "h": content_hash(image), "seq": "7".zfill(40), "at": AT}
    assert change.id == {"pk": "a", "sk": 1}
    assert document_to_item(change.document) == image


def test_lambda_events_carry_base64_binary_and_epoch_times():
    image = {"pk": {"S": "a"}, "sk": {"N": "1"}, "blob": {"B": base64.b64encode(b"\x01\x02").decode()}}
    record = _record("MODIFY", 9, image=image)
    record["dynamodb"]["ApproximateCreationDateTime"] = AT.timestamp()
    change = records.to_change(record, KEYS, binary_as_base64=True)
    assert change.document["blob"] == b"\x01\x02"
    assert change.created == AT


def test_a_record_without_new_image_is_a_clear_error():
    record = _record("MODIFY", 3)
    del record["dynamodb"]["NewImage"]
    with pytest.raises(records.ForwardApplyError, match="NEW_AND_OLD_IMAGES"):
        records.to_change(record, KEYS)


def test_sequence_numbers_sort_as_numbers_once_padded():
    assert records.padded("99") < records.padded("100")
    with pytest.raises(ValueError):
        records.padded("12a")


def test_latest_wins_orders_by_each_sides_precision_and_gives_ties_to_dynamodb():
    second = dt.datetime(2026, 12, 4, 12, 0, 0, tzinfo=dt.timezone.utc)
    # A whole-second stream time (AWS rounds down): a MongoDB write 400 ms later may be earlier.
    assert policy.later(second, second + dt.timedelta(milliseconds=400)) == "dynamodb"
    assert policy.later(second, second + dt.timedelta(seconds=1)) == "mongodb"
    assert policy.later(second, second - dt.timedelta(milliseconds=1)) == "dynamodb"
    # A stream time with milliseconds (an emulator) is taken at its precision.
    precise = second + dt.timedelta(milliseconds=120)
    assert policy.later(precise, precise + dt.timedelta(milliseconds=2)) == "mongodb"
    assert policy.later(precise, precise) == "dynamodb", "a tie goes to DynamoDB"


def test_an_echo_is_met_once_per_write_and_again_only_by_the_same_record():
    change = records.to_change(_record("MODIFY", 7), KEYS)
    entry = LedgerEntry(change.id, pending={change.hash: ["t1", "t2"]})
    assert entry.meet(change) == (APPLIES, (change.id, change.hash, "t1"))
    assert entry.meet(change) == (APPLIES, (change.id, change.hash, "t2"))
    assert entry.meet(change) is None, "a third record of the same content is the application's own"
    assert LedgerEntry(change.id, met={change.hash: change.seq}).meet(change) == (APPLIES, None)
    overruled = LedgerEntry(change.id, overruled={change.hash: ["t3"]})
    assert overruled.meet(change) == (OVERRULED, (change.id, change.hash, "t3"))


def test_ttl_expiries_are_told_by_the_service_identity():
    record = _record("REMOVE", 9)
    assert not records.to_change(record, KEYS).ttl
    record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert records.to_change(record, KEYS).ttl


def test_lag_watch_needs_consecutive_good_checks():
    watch = LagWatch(threshold_seconds=10, consecutive=3)
    decisions = [watch.observe(LagReport(lag, "")) for lag in (1, 2, 50, 1, 1, 1)]
    assert decisions == ["waiting", "waiting", "waiting", "waiting", "waiting", "caught_up"]
    assert watch.observe(LagReport(None, "unknown")) == "waiting"


def test_lag_watch_fails_on_fatal_reports_and_persistent_function_errors():
    assert LagWatch(10, 1).observe(LagReport(1, "", fatal="retention")) == "failed"
    watch = LagWatch(10, 1, failing_checks_allowed=2)
    failing = {"state": "Enabled", "last_processing_result": "PROBLEM: Function call failed", "iterator_age_seconds": 1}
    decisions = [watch.observe(lambda_lag(dict(failing), alarm_hours=18)) for _ in range(3)]
    assert decisions[-1] == "failed"


def test_lambda_lag_reads_the_mapping():
    assert lambda_lag({"state": "Disabled", "uuid": "u"}, 18).fatal
    report = lambda_lag({"state": "Enabled", "last_processing_result": "OK", "iterator_age_seconds": None}, 18)
    assert report.lag_seconds == 0.0 and not report.fatal
    old = lambda_lag({"state": "Enabled", "iterator_age_seconds": 19 * 3600}, 18)
    assert "24 h retention" in old.fatal
