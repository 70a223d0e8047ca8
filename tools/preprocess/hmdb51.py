"""Prepare hmdb51: same as `vidpeft-prep hmdb51 --src RAW --out OUT [options]` (see --help)."""
import sys

from vidpeft.cli.prep import main

if __name__ == "__main__":
    sys.exit(main(["hmdb51", *sys.argv[1:]]))
