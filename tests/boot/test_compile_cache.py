"""The S3 compile cache through the boot sequence: compile once, then every boot is a hit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from boot_fakes import BootAws, FakeBackend, RecordingEngine, emitted, memory_metrics

from agentfleet.serve.boot.compile_cache import MANIFEST, CacheEntryError, S3CompileCache, sha256_file
from agentfleet.serve.boot.sequence import WARMUP_PROMPT, Boot, BootError

pytestmark = pytest.mark.integration


def _boot(aws: BootAws, engine: RecordingEngine, root: Path, **settings: object) -> tuple[Boot, object]:
    metrics = memory_metrics()
    boot = Boot(aws.settings(root, **settings), engine, "trn2", aws.deps(metrics), owner=f"owner-{root.name}")
    return boot, metrics


def test_first_boot_compiles_once_and_publishes_a_manifest_last(boot_aws: BootAws, tmp_path: Path) -> None:
    engine = RecordingEngine()
    boot, metrics = _boot(boot_aws, engine, tmp_path / "a")
    result = boot.run()

    assert len(engine.compiles) == 1 and result.compiled and result.published and not result.cache_hit
    assert isinstance(result.backend, FakeBackend) and result.backend.calls == [[WARMUP_PROMPT]]
    listed = boot_aws.s3.list_objects_v2(Bucket=boot_aws.bucket, Prefix=f"compiled/{result.key}/")
    names = sorted(o["Key"].rsplit(f"{result.key}/", 1)[1] for o in listed["Contents"])
    assert names == ["config.json", MANIFEST, "neffs/model.neff"]
    manifest = json.loads(boot_aws.s3.get_object(Bucket=boot_aws.bucket,
                                                 Key=f"compiled/{result.key}/{MANIFEST}")["Body"].read())
    files = {f["path"]: f for f in manifest["files"]}
    neff = result.artifact_dir / "neffs" / "model.neff"
    assert files["neffs/model.neff"] == {"path": "neffs/model.neff", "size": neff.stat().st_size,
                                         "sha256": sha256_file(neff)}
    assert manifest["inputs"]["compiler_version"] == "2.27.5334.0" and manifest["key"] == result.key
    out = emitted(metrics)
    assert '"CompileCacheMiss": 1.0' in out and "CompileSeconds" in out and '"Phase": "compile"' in out


def test_second_boot_compiles_zero_times(boot_aws: BootAws, tmp_path: Path) -> None:
    first = RecordingEngine()
    _boot(boot_aws, first, tmp_path / "a")[0].run()
    second = RecordingEngine()
    boot, metrics = _boot(boot_aws, second, tmp_path / "b")  # another instance: empty local disk
    result = boot.run()
    assert second.compiles == [] and result.cache_hit and not result.compiled
    assert second.loads == [tmp_path / "b" / result.key]
    assert (tmp_path / "b" / result.key / "neffs" / "model.neff").read_bytes() == \
        (tmp_path / "a" / result.key / "neffs" / "model.neff").read_bytes()
    out = emitted(metrics)
    assert '"CompileCacheHit": 1.0' in out and "CompileCacheMiss" not in out and '"Phase": "download"' in out


def test_a_restart_reuses_the_local_copy_without_download(boot_aws: BootAws, tmp_path: Path) -> None:
    _boot(boot_aws, RecordingEngine(), tmp_path / "a")[0].run()
    again = RecordingEngine()
    boot, _ = _boot(boot_aws, again, tmp_path / "a")
    result = boot.run()
    assert again.compiles == [] and result.cache_hit and "download" not in result.phases


def test_a_changed_shape_is_a_new_entry(boot_aws: BootAws, tmp_path: Path) -> None:
    engine = RecordingEngine()
    first = _boot(boot_aws, engine, tmp_path / "a")[0].run()
    second = _boot(boot_aws, engine, tmp_path / "b", batch_size=8)[0].run()
    assert first.key != second.key and len(engine.compiles) == 2


def test_entry_without_manifest_is_ignored_and_rebuilt(boot_aws: BootAws, tmp_path: Path) -> None:
    engine = RecordingEngine()
    boot, _ = _boot(boot_aws, engine, tmp_path / "a")
    key = boot.prepare().key
    # Simulate a compile that died after uploading files: delete only the manifest.
    boot_aws.s3.delete_object(Bucket=boot_aws.bucket, Key=f"compiled/{key}/{MANIFEST}")
    rebuilt = RecordingEngine()
    result = _boot(boot_aws, rebuilt, tmp_path / "b")[0].run()
    assert len(rebuilt.compiles) == 1 and result.published and not result.cache_hit
    assert S3CompileCache(boot_aws.s3, boot_aws.bucket).lookup(key) is not None


def test_a_corrupted_file_fails_the_download_and_leaves_no_partial_copy(boot_aws: BootAws, tmp_path: Path) -> None:
    key = _boot(boot_aws, RecordingEngine(), tmp_path / "a")[0].prepare().key
    boot_aws.s3.put_object(Bucket=boot_aws.bucket, Key=f"compiled/{key}/neffs/model.neff", Body=b"garbage")
    boot, _ = _boot(boot_aws, RecordingEngine(), tmp_path / "b")
    with pytest.raises(BootError, match=r"download.*does not match"):
        boot.run()
    assert not (tmp_path / "b" / key).exists()
    assert [p.name for p in (tmp_path / "b").iterdir()] == []


def test_an_unsafe_manifest_is_refused(boot_aws: BootAws, tmp_path: Path) -> None:
    cache = S3CompileCache(boot_aws.s3, boot_aws.bucket)
    bad = {"version": 1, "key": "k1", "inputs": {}, "files": [{"path": "../../etc/passwd", "size": 1, "sha256": "x"}]}
    boot_aws.s3.put_object(Bucket=boot_aws.bucket, Key=f"compiled/k1/{MANIFEST}", Body=json.dumps(bad).encode())
    with pytest.raises(CacheEntryError, match="unsafe path"):
        cache.lookup("k1")
    boot_aws.s3.put_object(Bucket=boot_aws.bucket, Key=f"compiled/k2/{MANIFEST}", Body=b"{not json")
    with pytest.raises(CacheEntryError, match="malformed"):
        cache.lookup("k2")


def test_a_different_serve_config_or_image_is_a_different_entry(boot_aws: BootAws, tmp_path: Path) -> None:
    _boot(boot_aws, RecordingEngine(config={"NEURON_CC_FLAGS": "-O1"}), tmp_path / "a")[0].run()
    flags = RecordingEngine(config={"NEURON_CC_FLAGS": "-O2"})
    result = _boot(boot_aws, flags, tmp_path / "b")[0].run()
    assert len(flags.compiles) == 1 and not result.cache_hit, "other compiler flags must not reuse the NEFFs"
    image = RecordingEngine(config={"NEURON_CC_FLAGS": "-O1"})
    _boot(boot_aws, image, tmp_path / "c", image_uri="repo/agentfleet@sha256:new")[0].run()
    assert len(image.compiles) == 1, "another image must not reuse the NEFFs"
