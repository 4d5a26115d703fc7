"""Help that shows each option's default, as users of argparse-based tools expect, without the noise of
"(default: None)" on required options and flags."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help when X says something: not for required options, flags, empty
    values, or help that already names its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or "default" in text
            or action.required
            or any(default is nothing for nothing in (None, False, True, argparse.SUPPRESS))
            or default == ""
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def prog_name(command: str, module: str) -> str:
    """The name usage lines show: the console script when that is what ran, else `python -m MODULE`, so the usage
    line is a command the user can paste back."""
    return command if Path(sys.argv[0]).name == command else f"python -m {module}"


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("restoration")
    except PackageNotFoundError:
        return "unknown (not installed)"


def add_version(parser: argparse.ArgumentParser) -> None:
    """`--version`, the same on every command line: the installed package's version."""
    parser.add_argument("--version", action="version", version=f"restoration {package_version()}")
