"""Import official MAT checkpoints without executing any of their code: `restoration-convert-mat SRC OUT.safetensors`.

The conversion itself (safe unpickling, key conversion, the safetensors file) is `restoration.models.mat_checkpoint`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from restoration.cli_help import add_version, prog_name
from restoration.models.mat_checkpoint import UnsafePickleError, convert


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog_name("restoration-convert-mat", "restoration.convert_mat"), description=__doc__.split("\n\n")[0]
    )
    add_version(parser)
    parser.add_argument("src", type=Path, help="official .pkl, or a G-only .pth state dict")
    parser.add_argument("out", type=Path, help="output .safetensors")
    ns = parser.parse_args(argv)
    try:
        meta = convert(ns.src, ns.out)
    except UnsafePickleError as err:
        print(f"refused: {err}" if str(ns.src) in str(err) else f"refused: {ns.src}: {err}", file=sys.stderr)
        return 3
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{ns.out}: {', '.join(meta['networks'])} at {meta['img_resolution']} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
