"""The export ETA: DynamoDB reports no progress, so the rate comes from the table's previous export."""

from __future__ import annotations

from dynamo2mongo.fullload.export.request import export_estimate


def test_an_export_eta_comes_from_the_tables_previous_export():
    earlier = [
        {"start_time": "2026-11-24T10:00:00+00:00", "end_time": "2026-11-24T10:10:00+00:00",
         "billed_size_bytes": 600 * 2**20},
        {"start_time": "2026-11-25T08:00:00+00:00", "end_time": "2026-11-25T08:10:00+00:00",
         "billed_size_bytes": 1200 * 2**20},
        {"export_arn": "unfinished", "start_time": "2026-11-25T09:00:00+00:00"},
    ]
    text = export_estimate(earlier, 2400 * 2**20, "2026-11-25T12:00:00+00:00")
    # The latest finished export read 2 MiB/s: 2,400 MiB take 20 minutes.
    assert text == ("2,400.0 MiB as of DescribeTable; ETA 12:20 UTC at the previous export's 2.0 MiB/s "
                    "(DynamoDB reports no export progress)")
    assert "no ETA" in export_estimate(earlier[2:], 10, "2026-11-25T12:00:00+00:00")
    assert "table size unknown" in export_estimate(earlier, None, "2026-11-25T12:00:00+00:00")
