"""`python -m codesearch.report DIR` is `codesearch report DIR`."""

import sys

if __name__ == "__main__":
    from codesearch.cli import main

    sys.exit(main(["report", *sys.argv[1:]]))
