"""The migration's phases in their order, and the typed view of its state document."""

import datetime as dt

import pytest

from dynamo2mongo.prepare.table import TableKey
from dynamo2mongo.state import Migration, Phase
from dynamo2mongo.sync.checkpoints import RelayBeat, RelayStatus


def test_phases_are_ordered_by_how_far_the_migration_has_come():
    assert list(Phase) == sorted(Phase)
    assert Phase.FULL_LOAD_MISMATCH < Phase.FULL_LOAD_DONE < Phase.FORWARD_CAUGHT_UP
    # A rollback returns the table to before its cut-over; finished is last.
    assert Phase.FORWARD_CAUGHT_UP < Phase.ROLLED_BACK < Phase.CUT_OVER < Phase.FINISHED


def test_a_phase_compares_with_its_name_by_the_order_not_the_alphabet():
    assert Phase.FINISHED == "finished"
    assert Phase.CUT_OVER < "finished"  # alphabetically "cut_over" < "finished" too, but:
    assert Phase.ROLLED_BACK < "cut_over"
    assert f"{Phase.EXPORTED}" == "exported"
    with pytest.raises(ValueError):
        assert Phase.EXPORTED < "no_such_phase"


def test_the_migration_view_reads_what_tasks_recorded_and_defaults_the_rest():
    empty = Migration({})
    assert (empty.phase, empty.writer, empty.stream_arn, empty.key_attrs, empty.key) == (None, "dynamodb", None, (), None)
    assert not empty.reached(Phase.PREFLIGHT_PASSED)
    assert empty.desired("forward") == "run" and empty.lag_alerts == {} and empty.full_load == {}

    migration = Migration({
        "phase": "rolled_back", "writer": "dynamodb", "stream": {"arn": "arn:s", "enabled_by_us": True},
        "source": {"key": ["pk", "sk"], "key_types": {"pk": "S", "sk": "N", "other": "S"}},
        "control": {"forward": "stop"}, "lag_alerts": {"forward": None, "backward": {"since": 1}},
        "exports": {"manual__2025-01-01T00:00:00_5+00:00": {"export_id": "01"}},
    })
    assert migration.phase is Phase.ROLLED_BACK
    assert migration.reached(Phase.FORWARD_CAUGHT_UP) and not migration.reached(Phase.CUT_OVER)
    assert migration.key == TableKey(("pk", "sk"), {"pk": "S", "sk": "N"})
    assert migration.stream_arn == "arn:s" and migration.stream_enabled_by_us
    assert migration.desired("forward") == "stop" and migration.desired("backward") == "run"
    assert migration.lag_alerts == {"backward": {"since": 1}}
    assert migration.export_for_run("manual__2025-01-01T00:00:00.5+00:00") == {"export_id": "01"}
    # A key without its types is not the whole key: DescribeTable gives it.
    assert Migration({"source": {"key": ["pk"]}}).key is None


def test_a_heartbeat_is_interpreted_in_one_place():
    at = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    beat = RelayBeat({"status": RelayStatus.APPLYING, "beat_at": at - dt.timedelta(seconds=30)})
    assert beat.applying and not beat.halted and beat.applies(at, 60) and not beat.applies(at, 10)
    for status in (RelayStatus.PAUSED, RelayStatus.STOPPED, RelayStatus.FAILED):
        assert RelayBeat({"status": status, "beat_at": at}).halted
    assert RelayBeat({"status": RelayStatus.WAITING_FOR_FULL_LOAD, "beat_at": at}).waiting
