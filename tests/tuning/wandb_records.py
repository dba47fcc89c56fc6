"""Read the records of an offline W&B run file (``run-*.wandb``): LevelDB-log framing, protobuf records.

W&B 0.31 ships no Python reader for its offline files; this lets tests check what a run recorded.
"""

from __future__ import annotations

import struct
from pathlib import Path

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


def run_record(run_dir: Path) -> wandb_internal_pb2.RunRecord:
    """The run record (name, group, job type, initial config) of an ``offline-run-*`` folder."""
    (path,) = run_dir.glob("run-*.wandb")
    runs = [r.run for r in read_records(path) if r.WhichOneof("record_type") == "run"]
    assert runs, f"no run record in {path}"
    return runs[0]
