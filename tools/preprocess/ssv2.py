"""Prepare ssv2: same as `vidpeft-prep ssv2 --src RAW --out OUT [options]` (see --help)."""
import sys

from vidpeft.cli.prep import main

if __name__ == "__main__":
    sys.exit(main(["ssv2", *sys.argv[1:]]))
