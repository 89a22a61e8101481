"""The shared compile cache in S3: `s3://<bucket>/compiled/<key>/...` plus a manifest written LAST.

An entry exists only once its manifest exists: files are uploaded first, the manifest
(every file with its size and SHA-256) after them, so a compile that died halfway leaves
files that no boot will ever read. Downloads are checked against the manifest and land
in a temporary folder that is renamed into place only when every file matched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from agentfleet.ops import logs

log = logs.get(__name__)

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
LOCAL_MARKER = ".agentfleet-manifest.json"  # a local copy that is complete carries its manifest


class CacheEntryError(RuntimeError):
    """A cache entry that exists but cannot be used (bad manifest, size or checksum mismatch)."""


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    key: str
    files: tuple[FileEntry, ...]
    inputs: dict[str, Any]
    created_by: str
    created_at: float

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> str:
        return json.dumps({
            "version": MANIFEST_VERSION, "key": self.key, "inputs": self.inputs,
            "created_by": self.created_by, "created_at": self.created_at,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }, indent=1, sort_keys=True)

    @classmethod
    def parse(cls, text: str, *, expect_key: str) -> Manifest:
        try:
            doc = json.loads(text)
            if doc.get("version") != MANIFEST_VERSION:
                raise CacheEntryError(f"manifest version {doc.get('version')!r}, expected {MANIFEST_VERSION}")
            if doc["key"] != expect_key:
                raise CacheEntryError(f"manifest is for key {doc['key']!r}, expected {expect_key!r}")
            files = tuple(FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in doc["files"])
            manifest = cls(expect_key, files, dict(doc.get("inputs", {})),
                           str(doc.get("created_by", "")), float(doc.get("created_at", 0)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CacheEntryError(f"manifest for {expect_key} is malformed: {exc!r}") from None
        for entry in files:
            _check_relative(entry.path)
        if not files:
            raise CacheEntryError(f"manifest for {expect_key} lists no files")
        return manifest


def _check_relative(path: str) -> None:
    # A manifest is data from S3: never let it write outside the destination folder.
    parts = PurePosixPath(path).parts
    if not parts or PurePosixPath(path).is_absolute() or ".." in parts or path == MANIFEST:
        raise CacheEntryError(f"manifest lists an unsafe path {path!r}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def scan(folder: Path) -> tuple[FileEntry, ...]:
    """Every regular file under folder (sorted), with size and checksum."""
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != LOCAL_MARKER):
        entries.append(FileEntry(path.relative_to(folder).as_posix(), path.stat().st_size, sha256_file(path)))
    if not entries:
        raise CacheEntryError(f"{folder} holds no files to cache")
    return tuple(entries)


class S3CompileCache:
    """Look up, download and publish compiled artifacts under `s3://bucket/prefix<key>/`."""

    def __init__(self, s3_client: Any, bucket: str, prefix: str = "compiled/") -> None:
        if not bucket:
            raise ValueError("the compile cache needs a bucket (settings.cache_bucket)")
        self.s3, self.bucket = s3_client, bucket
        self.prefix = prefix.rstrip("/") + "/"

    def _object(self, key: str, name: str) -> str:
        return f"{self.prefix}{key}/{name}"

    def lookup(self, key: str) -> Manifest | None:
        """The entry's manifest, or None when there is none (files without a manifest do not count)."""
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self._object(key, MANIFEST))["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return Manifest.parse(body.decode("utf-8"), expect_key=key)

    def download(self, manifest: Manifest, dest: Path) -> None:
        """Fetch every file, check size and SHA-256, then move the folder into place as `dest`."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            for entry in manifest.files:
                target = staging / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(self.bucket, self._object(manifest.key, entry.path), str(target))
                size = target.stat().st_size
                if size != entry.size or sha256_file(target) != entry.sha256:
                    raise CacheEntryError(f"{entry.path} in cache entry {manifest.key} does not match its manifest "
                                          f"(size {size}, expected {entry.size})")
            (staging / LOCAL_MARKER).write_text(manifest.to_json(), encoding="utf-8")
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(staging, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def publish(self, key: str, folder: Path, *, inputs: dict[str, Any], created_by: str) -> Manifest:
        """Upload every file of `folder`, then the manifest; returns the manifest."""
        manifest = Manifest(key, scan(folder), inputs, created_by, time.time())
        sent = 0
        for entry in manifest.files:
            self.s3.upload_file(str(folder / entry.path), self.bucket, self._object(key, entry.path))
            sent += entry.size
            log.info("cache upload progress", extra={"cache_key": key, "file": entry.path,
                                                     "bytes_sent": sent, "bytes_total": manifest.total_bytes})
        self.s3.put_object(Bucket=self.bucket, Key=self._object(key, MANIFEST),
                           Body=manifest.to_json().encode("utf-8"), ContentType="application/json")
        (folder / LOCAL_MARKER).write_text(manifest.to_json(), encoding="utf-8")
        return manifest


def local_copy(folder: Path, key: str) -> Manifest | None:
    """The manifest of a complete local copy (a restart on the same host), else None."""
    marker = folder / LOCAL_MARKER
    if not marker.is_file():
        return None
    try:
        manifest = Manifest.parse(marker.read_text(encoding="utf-8"), expect_key=key)
        # Sizes only: hashing many GiB on every restart would cost minutes; the download checked them.
        for entry in manifest.files:
            path = folder / entry.path
            if not path.is_file() or path.stat().st_size != entry.size:
                raise CacheEntryError(f"{entry.path} is missing or has the wrong size")
        return manifest
    except CacheEntryError as exc:
        log.warning("ignoring a broken local cache copy", extra={"folder": str(folder), "reason": str(exc)})
        return None
