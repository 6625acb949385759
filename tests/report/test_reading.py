"""Reading log lines back: logfmt, prefixes, duplicates, merging and flagging."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from traffic_duplicator.compare import lines
from traffic_duplicator.logs import logfmt
from traffic_duplicator.report import merge, reader
from traffic_duplicator.report.logfmt import parse_logfmt


@given(st.dictionaries(st.from_regex(r"[a-z#_.]{1,12}", fullmatch=True), st.text(max_size=30)))
def test_logfmt_round_trips(fields):
    assert parse_logfmt(logfmt(**fields)) == fields


def test_bare_keys_and_unterminated_quotes():
    assert parse_logfmt("final a=1") == {"final": "true", "a": "1"}
    with pytest.raises(ValueError):
        parse_logfmt('a="open')


def test_fields_encoding_round_trips_any_name():
    counts = {"status": 2, 'body:$["a,b=c d%"]': 3, "header:x-y": 1}
    assert lines.decode_fields(lines.encode_fields(counts)) == counts


def line(
    *, destination="https://a", route="GET /x", role="candidate", compared=10, fields="", end=1
):
    return logfmt(
        at="compare",
        source="web.1",
        destination=destination,
        role=role,
        route=route,
        compared=compared,
        status_mismatch=0,
        header_mismatch=0,
        body_mismatch=0,
        errors=0,
        dropped=0,
        production_latency="h1;100*10",
        shadow_latency="h1;120*10",
        fields=fields,
        end=end,
    )


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "replayer | ",
        "2026-05-01T10:00:00.000000+00:00 app[web.1]: ",
        "2026-05-01T10:00:00.000000+00:00 app[web.1]: replayer | ",
        "250 <190>1 2026-05-01T10:00:00+00:00 host app web.1 - ",
    ],
)
def test_prefixes_are_ignored(prefix):
    result = reader.read([("f", [prefix + line() + "\n"])])
    assert len(result.records) == 1 and result.records[0].route == "GET /x"


def test_other_lines_are_ignored_and_duplicates_count_once():
    text = ["at=info x=1", "state=at=compare-ish", line(end=1), line(end=1), line(end=2)]
    result = reader.read([("f", text)])
    assert len(result.records) == 2 and result.duplicates == 1 and result.malformed == 0


def test_rows_merge_across_lines_and_a_baseline_without_the_route_measures_no_noise():
    records = reader.read(
        [
            (
                "f",
                [
                    line(
                        role="baseline",
                        destination="https://b",
                        route="GET /x",
                        fields="body:$.t=10",
                    ),
                    line(route="GET /x", fields="body:$.t=10", end=1),
                    line(route="GET /x", fields="body:$.t=2", end=2),
                    line(route="GET /y", fields="status=1"),
                ],
            )
        ]
    ).records
    rows = merge.merge(records)
    merge.flag(rows)
    by = {(row.destination, row.route): row for row in rows}
    assert by[("https://a", "GET /x")].counts["compared"] == 20
    assert by[("https://a", "GET /x")].fields == {"body:$.t": 12}
    assert not by[("https://a", "GET /x")].flagged  # 60 % vs the baseline's 100 %
    assert by[("https://a", "GET /y")].flagged_fields == ["status"]
    assert not by[("https://b", "GET /x")].flagged
    json_row = merge.to_json(by[("https://a", "GET /y")])
    assert json_row["status_mismatch_rate"] == 0.0 and json_row["flagged"] is True


def test_a_field_count_masked_by_an_older_version_is_reported_not_fatal():
    text = line(fields="status=4,header:x-auth-token=***").replace("compared=10", "compared=4")
    result = reader.read([("old.log", [text])])
    assert result.malformed == 0
    [record] = result.records
    assert record.fields == {"status": 4}
    assert record.masked_fields == ("header:x-auth-token",)
    assert result.masked_fields() == ["header:x-auth-token"]
    with pytest.raises(ValueError, match="bad field count"):
        lines.decode_fields("header:x-auth-token=***")  # without a list to note it in
