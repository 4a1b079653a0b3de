"""Run a profile of experiments/ and write its report: `python experiments/reproduce.py local`.

The driver lives in codesearch/reproduce/ and the command is `codesearch reproduce`; `make
reproduce [PROFILE=<name>]` calls this script, where the name is one of experiments/*.yaml
(local, evidence, smoke, ablation, paper, paper-tiny, gpu, sts, sts-ablation,
paper-sts, paper-sts-tiny). Rerunning the same command skips
finished cells and resumes interrupted ones.
"""

import sys

from codesearch.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", *sys.argv[1:]]))
