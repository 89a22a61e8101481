"""De-aggregating records the Kinesis Producer Library packed together.

Format (awslabs/amazon-kinesis-producer, aggregation-format.md and aws/kinesis/protobuf/
messages.proto, commit 11c4a64): 4 magic bytes F3 89 9A C2, a protobuf (proto2) message

    AggregatedRecord { repeated string partition_key_table = 1; repeated string
                       explicit_hash_key_table = 2; repeated Record records = 3; }
    Record { required uint64 partition_key_index = 1; optional uint64
             explicit_hash_key_index = 2; required bytes data = 3; repeated Tag tags = 4; }

then the 16-byte MD5 of the protobuf bytes. Like the KCL (awslabs/amazon-kinesis-client,
retrieval/AggregatorUtil.java deaggregate, commit 024eb86), a record whose magic, checksum or
protobuf does not match is an ordinary record, passed on whole. User record i of a record gets
sub-sequence number i (the KCL's subSeqNum counts from 0 in the same order).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

MAGIC = b"\xf3\x89\x9a\xc2"
_DIGEST = 16


@dataclass(frozen=True)
class UserRecord:
    data: bytes
    partition_key: str
    sub_sequence: int | None  # None: the record was not aggregated


class _Malformed(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: varints as int, length-delimited as bytes; fixed widths skipped."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise _Malformed("truncated field")
            out.append((number, buf[pos:pos + size]))
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise _Malformed(f"unsupported wire type {wire}")
    if pos != len(buf):
        raise _Malformed("trailing bytes")
    return out


def _parse(message: bytes) -> list[UserRecord]:
    keys: list[str] = []
    raw_records: list[bytes] = []
    for number, value in _fields(message):
        if number == 1 and isinstance(value, bytes):
            keys.append(value.decode("utf-8"))
        elif number == 3 and isinstance(value, bytes):
            raw_records.append(value)
    records = []
    for index, raw in enumerate(raw_records):
        fields = dict(_fields(raw))
        key_index, data = fields.get(1), fields.get(3)
        if not isinstance(key_index, int) or not isinstance(data, bytes) or key_index >= len(keys):
            raise _Malformed(f"user record {index} lacks a partition key index or data")
        records.append(UserRecord(data, keys[key_index], index))
    return records


def deaggregate(data: bytes, partition_key: str = "") -> list[UserRecord]:
    """The user records in one stream record (itself, whole, when it is not KPL-aggregated)."""
    if data[:4] == MAGIC and len(data) > len(MAGIC) + _DIGEST:
        message, digest = data[len(MAGIC):-_DIGEST], data[-_DIGEST:]
        if hashlib.md5(message).digest() == digest:  # noqa: S324 (the format's checksum, not security)
            try:
                return _parse(message)
            except (_Malformed, UnicodeDecodeError):
                pass
    return [UserRecord(data, partition_key, None)]
