"""metrics.json, the record every run leaves: a failure in one line, and a record that is missing
or garbled read as a failed run's."""

from src.core.errors import UsageError
from src.core.records import NOT_FINISHED, failure_reason, read_record, write_failure


def test_an_error_becomes_one_line():
    assert (
        failure_reason(UsageError("optimizer.lr must be > 0\nmore")) == "optimizer.lr must be > 0"
    )
    assert failure_reason(ValueError("bad shape\ndetails")) == "ValueError: bad shape"
    assert failure_reason(MemoryError()) == "MemoryError"


def test_a_failure_is_read_back_with_its_reason(tmp_path):
    write_failure(tmp_path, ValueError("bad shape\ndetails"), ["seed=1"], None)
    record = read_record(tmp_path)
    assert (record["status"], record["error"], record["overrides"]) == (
        "failed",
        "ValueError: bad shape",
        ["seed=1"],
    )


def test_a_missing_or_garbled_record_reads_as_a_failed_run(tmp_path):
    assert read_record(tmp_path) == {"status": "failed", "error": NOT_FINISHED}
    for garbled in (b'{"status": "ok", "test/a', b"\xff\xfe", b"[1, 2]"):
        (tmp_path / "metrics.json").write_bytes(garbled)
        assert read_record(tmp_path) == {
            "status": "failed",
            "error": f"{tmp_path / 'metrics.json'} is not a run's record: cut short or garbled",
        }
