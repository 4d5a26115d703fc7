"""Build validated WebDataset shards from the contest layout or from any folder of color photos.

    python -m data_prep.build_shards contest --root DIR [--csv train.csv] --out OUT
    python -m data_prep.build_shards photos  --root DIR [DIR ...] --out OUT [--size 512]

The library (listing, checks, shard plan, shards, receipts, manifest) is `restoration.data.shard_sources` and
`restoration.data.shard_build`, whose docstring says why it is built the way it is.

Exit codes: 0 built; 1 the build stopped (`--strict` on a bad input, a write failing during the build); 2 `--out`
cannot be used (a file in its place, read-only); 130 interrupted (Ctrl-C): completed shards are kept, the same
command continues.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from restoration.cli_help import DefaultsHelpFormatter, add_version, prog_name
from restoration.data.shard_build import build
from restoration.data.shard_sources import VAL_MASKS, BuildError
from restoration.image_io import OutputError, escape_undecodable_output


def main(argv: list[str] | None = None) -> int:
    escape_undecodable_output()
    parser = argparse.ArgumentParser(
        prog=prog_name("restoration-shards", "data_prep.build_shards"), description=__doc__.split("\n\n")[0]
    )
    add_version(parser)
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("contest", "photos"):
        p = sub.add_parser(mode, help=f"build shards from the {mode} layout",
                           formatter_class=DefaultsHelpFormatter)  # fmt: skip
        layout = "train_input/, train_gt/ and the csv" if mode == "contest" else "photos, in subfolders or not"
        if mode == "contest":
            p.add_argument("--root", type=Path, required=True, help=f"the folder holding the {layout}")
        else:
            p.add_argument(
                "--root", type=Path, nargs="+", required=True, metavar="FOLDER",
                help=f"the folder(s) holding the {layout}; several are one dataset (keys and paths relative to their "
                "common parent; a photo's group is its subfolder within its folder)",
            )  # fmt: skip
        p.add_argument("--out", type=Path, required=True, help="the shard folder (a rerun rebuilds only what changed)")
        if mode == "contest":
            p.add_argument("--csv", default="train.csv", help="train.csv (input + gt) or test.csv (inputs only)")
        else:
            p.add_argument("--size", type=int, default=512, help="resize and center-crop to this square size")
            p.add_argument(
                "--val-masks", choices=sorted(VAL_MASKS), default="mixture",
                help="masks baked into the val samples: the training mixture or contest polygons only",
            )  # fmt: skip
        p.add_argument("--val-fraction", type=float, default=0.05, help="share of groups held out (hashed)")
        p.add_argument(
            "--val-groups", default="", metavar="A,B",
            help="hold out these groups instead of a fraction: top-level folders of --root (photos) or values of "
            "the csv's group column (contest); e.g. one folder per photo source, to validate on unseen sources",
        )  # fmt: skip
        p.add_argument("--samples-per-shard", type=int, default=1000, help="samples per tar file")
        p.add_argument("--workers", type=int, default=1, help="processes that decode and encode images")
        p.add_argument("--seed", type=int, default=0, help="seeds the val masks")
        p.add_argument("--strict", action="store_true", help="stop at the first bad input (non-zero exit)")
    ns = parser.parse_args(argv)
    try:
        manifest = build(
            ns.mode,
            ns.root,
            ns.out,
            csv_name=getattr(ns, "csv", "train.csv"),
            size=getattr(ns, "size", 512),
            val_fraction=ns.val_fraction,
            samples_per_shard=ns.samples_per_shard,
            workers=ns.workers,
            seed=ns.seed,
            strict=ns.strict,
            val_masks=getattr(ns, "val_masks", "mixture"),
            val_groups=[g for g in ns.val_groups.split(",") if g],
        )
    except OutputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # a full disk, a folder made read-only during the build, ...
        where = err.filename or ns.out
        print(f"error: {where}: {err.strerror or err}; completed shards are kept: fix it and rerun the same command "
              "to continue", file=sys.stderr)  # fmt: skip
        return 1
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to continue: completed shards are kept", file=sys.stderr)
        return 130
    t = manifest["totals"]
    print(
        f"{ns.out}: {t['train']} train + {t['val']} val samples in {len(manifest['shards'])} shards; "
        f"{t['rejected']} rejected (see {ns.out / 'rejected.csv'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
