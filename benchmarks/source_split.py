"""Photos split by SOURCE three ways, so that every reported figure is on sources nothing was trained or tuned on.

    python -m benchmarks.source_split --out runs/source-split                  # ../shared/photos + photos-extra

Each photo folder's `MANIFEST.csv` names the package a photo came from (`source_package`). Whole sources go to:
- train: every source not named below (most photos: `gcompris-qt-data`, `tuxpaint-data`, a few small ones);
- val (`--val`): the split every choice is made on (inference settings, checkpoints, loss weights): built into the
  shards as their val split with `restoration-shards --val-groups`;
- test (`--test`): photos of other sources used only for reporting, at the contest's size with contest-style
  masks, scored like a submission (`benchmarks.preset_eval`). They never enter a shard.
Writes `OUT/trainval/<source>/<photo>` and `OUT/test/<source>/<photo>` (symlinks), the shards `OUT/shards-<size>`,
the test set `OUT/contest-<test size>` and `OUT/split.json`.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from benchmarks.study import contest_eval_set
from restoration.data.shard_build import build_photo_shards

ROOT = Path(__file__).resolve().parents[1]
VAL = ("lomiri-wallpapers-16.04", "lxqt-themes")  # wallpapers and theme photos: real photos, two packages
TEST = ("mate-backgrounds", "kphotoalbum")  # photographs of two other packages, people and landscapes


def sources_of(folder: Path) -> dict[str, str]:
    """photo file -> its source package, from the folder's MANIFEST.csv."""
    with open(folder / "MANIFEST.csv", newline="") as fh:
        return {row["file"]: row["source_package"] for row in csv.DictReader(fh)}


def arrange(folders: list[Path], out: Path, val: tuple[str, ...], test: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Symlink every photo into `out/trainval/<source>/` or `out/test/<source>/`; returns the count per source."""
    counts: dict[str, dict[str, int]] = {"train": {}, "val": {}, "test": {}}
    for folder in folders:
        for name, source in sources_of(folder).items():
            split = "test" if source in test else "val" if source in val else "train"
            target = out / ("test" if split == "test" else "trainval") / source / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.is_symlink():
                target.symlink_to((folder / name).resolve())
            counts[split][source] = counts[split].get(source, 0) + 1
    missing = [s for s in (*val, *test) if s not in counts["val"] and s not in counts["test"]]
    if missing:
        raise SystemExit(f"no photos of source(s) {', '.join(missing)} in {', '.join(map(str, folders))}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.source_split", description=__doc__.split("\n")[0])
    shared = ROOT.parent / "shared"
    parser.add_argument("--photos", type=Path, nargs="+", default=[shared / "photos", shared / "photos-extra"])
    parser.add_argument("--out", type=Path, default=Path("runs/source-split"))
    parser.add_argument("--val", nargs="+", default=list(VAL), help="sources of the val split")
    parser.add_argument("--test", nargs="+", default=list(TEST), help="sources of the test split")
    parser.add_argument("--size", type=int, default=128, help="training resolution of the shards")
    parser.add_argument("--test-size", type=int, default=512, help="side of the test photos (the contest's)")
    ns = parser.parse_args(argv)
    counts = arrange(ns.photos, ns.out, tuple(ns.val), tuple(ns.test))
    shards = ns.out / f"shards-{ns.size}"
    if not (shards / "manifest.json").is_file():
        build_photo_shards(ns.out / "trainval", shards, size=ns.size, samples_per_shard=64, workers=2, seed=0,
                           progress=True, val_masks="contest", val_groups=tuple(ns.val))  # fmt: skip
    contest = contest_eval_set(ns.out / "test", ns.out, size=ns.test_size, val_groups=tuple(ns.test))
    split = {"photos": {k: sum(v.values()) for k, v in counts.items()}, "sources": counts, "shards": str(shards),
             "test": str(contest)}  # fmt: skip
    (ns.out / "split.json").write_text(json.dumps(split, indent=2))
    print(json.dumps(split, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
