"""`python -m codesearch.reproduce ...` is `codesearch reproduce ...`."""

import sys

if __name__ == "__main__":
    from codesearch.cli import main

    sys.exit(main(["reproduce", *sys.argv[1:]]))
