"""Prepare k400: same as `vidpeft-prep k400 --src RAW --out OUT [options]` (see --help)."""
import sys

from vidpeft.cli.prep import main

if __name__ == "__main__":
    sys.exit(main(["k400", *sys.argv[1:]]))
