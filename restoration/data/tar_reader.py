"""Reading samples out of tar shards: local files by seeking, everything else through webdataset's streaming reader.

Why: webdataset reads every shard as a stream (it must, for pipes and URLs), and Python's streaming tar reader
pulls a member in 10 KB records, one Python call each: ~0.35 ms per 512 px sample, 6 % of its PNG decode, in every
loader worker. A local shard can be read as a seekable file instead: the headers as they come, each member in one
`read`. The samples are the same (`group_by_keys` from webdataset groups both), as is the handling of unreadable
data: the error goes to the handler, which decides whether the stream goes on.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import webdataset as wds

_SKIPPED = re.compile(r"__[^/]*__($|/)")  # webdataset's metadata members (`__key__`-style names)


def is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:") and Path(url).is_file()


def local_members(url: str) -> Iterator[dict]:
    """(fname, data, __url__) of each regular member of a local tar, in file order; a member cut short raises."""
    with open(url, "rb") as file, tarfile.open(fileobj=file, mode="r:") as tar:
        while (info := tar.next()) is not None:
            tar.members.clear()  # the reader keeps every header it has read; a shard's worth is not needed
            if not info.isreg() or _SKIPPED.match(info.name):
                continue
            file.seek(info.offset_data)
            data = file.read(info.size)
            if len(data) != info.size:
                raise tarfile.ReadError(f"{url}: {info.name} ends after {len(data)} of {info.size} bytes")
            yield {"fname": info.name, "data": data, "__url__": url}


def _members(sources: Iterable[dict], handler: Callable[[Exception], bool]) -> Iterator[dict]:
    for source in sources:
        url = source["url"]
        if not is_local(url):
            opened = wds.tariterators.url_opener([source], handler=handler)
            yield from wds.tariterators.tar_file_expander(opened, handler=handler)
            continue
        try:
            yield from local_members(url)
        except Exception as exn:  # noqa: BLE001 - every unreadable shard goes to the handler, as in webdataset
            if not handler(exn):
                return
        yield {}  # end of shard: samples of two shards are never merged


def tar_samples(sources: Iterable[dict], handler: Callable[[Exception], bool]) -> Iterator[dict]:
    """dict(url=...) -> samples (`__key__`, `__url__`, one entry per member suffix), like webdataset's
    `tarfile_samples`."""
    return wds.tariterators.group_by_keys(_members(sources, handler), handler=handler)


tar_to_samples = wds.filters.pipelinefilter(tar_samples)
