"""The ``gmm-jax`` command."""

from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog="gmm-jax", description="Gaussian mixture models fitted by EM in JAX.")


def main(argv=None) -> int:
    _parser().parse_args(argv)
    _parser().print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
