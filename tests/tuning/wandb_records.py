"""Read the records of an offline W&B run file (``run-*.wandb``): LevelDB-log framing, protobuf records.

W&B 0.31 ships no Python reader for its offline files; this lets tests check what a run recorded.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from google.protobuf.message import DecodeError
from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = 7  # both the file header ("W&B" magic, version) and each record header (crc32, length, type)
FULL, LAST = 1, 4


def read_records(path: Path) -> list[wandb_internal_pb2.Record]:
    data, pos, fragment, records = path.read_bytes(), HEADER, b"", []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if length == 0 and kind == 0:  # block padding
            pos += left
            continue
        fragment += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(fragment)
            records.append(record)
            fragment = b""
    return records


def finished_records(run_dir: Path, timeout: float = 60.0) -> list[wandb_internal_pb2.Record]:
    """The records of the run file of an ``offline-run-*`` folder once it holds the run's last one (``exit``):
    W&B's service may still be writing the file for a moment after ``wandb.finish()`` returns."""
    deadline = time.monotonic() + timeout
    while True:
        paths = list(run_dir.glob("run-*.wandb"))
        try:
            records = read_records(paths[0]) if len(paths) == 1 else []
        except DecodeError:  # a record half written
            records = []
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            assert len(paths) == 1, f"{run_dir} holds {len(paths)} run files"
            return records
        time.sleep(0.1)


def run_record(run_dir: Path) -> wandb_internal_pb2.RunRecord:
    """The run record (name, group, job type, initial config) of an ``offline-run-*`` folder."""
    runs = [r.run for r in finished_records(run_dir) if r.WhichOneof("record_type") == "run"]
    assert runs, f"no run record in {run_dir}"
    return runs[0]


def run_summary(run_dir: Path) -> dict[str, object]:
    """The run's summary as it stands at the end (each key's last value), keys joined by ``.`` where nested."""
    summary: dict[str, object] = {}
    for record in finished_records(run_dir):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                summary[item.key or ".".join(item.nested_key)] = json.loads(item.value_json)
    return summary
