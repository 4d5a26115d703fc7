"""The seeking tar reader gives webdataset's samples for local shards, reads pipes through webdataset, and hands
truncated or garbage shards to the handler without losing the samples of the other shards."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import webdataset as wds

from restoration.data.tar_reader import tar_samples


def write_shard(path: Path, samples: int, size: int = 3000, extra_dir: bool = False) -> Path:
    with tarfile.open(path, "w") as tar:
        if extra_dir:
            info = tarfile.TarInfo(f"{path.stem}_dir")
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for i in range(samples):
            for suffix, data in (("gt.png", bytes([i % 251]) * (size + i)), ("json", b'{"fill": %d}' % i)):
                info = tarfile.TarInfo(f"{path.stem}_{i:03d}.{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def webdataset_samples(urls: list[str]) -> list[dict]:
    return list(wds.tariterators.tarfile_samples({"url": u} for u in urls))


def strip(samples: list[dict]) -> list[dict]:
    return [{k: v for k, v in s.items() if k != "__local_path__"} for s in samples]


def test_local_shards_give_webdataset_s_samples(tmp_path):
    urls = [str(write_shard(tmp_path / f"s{n}.tar", 4 + n, extra_dir=n == 1)) for n in range(3)]
    got = list(tar_samples(({"url": u} for u in urls), handler=wds.reraise_exception))
    assert len(got) == 4 + 5 + 6
    assert strip(got) == strip(webdataset_samples(urls))


def test_a_pipe_goes_through_webdataset(tmp_path):
    url = str(write_shard(tmp_path / "p.tar", 3))
    got = list(tar_samples([{"url": f"pipe:cat {url}"}], handler=wds.reraise_exception))
    assert [s["__key__"] for s in got] == ["p_000", "p_001", "p_002"]
    assert got[1]["gt.png"] == bytes([1]) * 3001


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_shard_goes_to_the_handler_and_the_next_shard_is_read(tmp_path, damage):
    first, bad, last = (write_shard(tmp_path / f"{name}.tar", 4) for name in ("a", "b", "c"))
    data = bad.read_bytes()
    bad.write_bytes(data[:6120] if damage == "truncated" else b"not a tar" * 300)
    errors: list[Exception] = []

    def handler(exn: Exception) -> bool:
        errors.append(exn)
        return True

    got = list(tar_samples(({"url": str(p)} for p in (first, bad, last)), handler=handler))
    keys = [s["__key__"] for s in got]
    assert keys[:4] == [f"a_{i:03d}" for i in range(4)]
    assert keys[-4:] == [f"c_{i:03d}" for i in range(4)]
    assert len(errors) == 1
    assert isinstance(errors[0], tarfile.ReadError)
    if damage == "truncated":  # the first sample of b is whole; its cut member is named
        assert "b_000" in keys
        assert "b.tar" in str(errors[0])
    with pytest.raises(tarfile.ReadError):
        list(tar_samples(({"url": str(p)} for p in (first, bad, last)), handler=wds.reraise_exception))
