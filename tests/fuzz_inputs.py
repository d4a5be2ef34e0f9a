"""The fuzzer's command line (the fuzzer itself is the package tests/fuzz/, one module per surface):

    .venv/bin/python tests/fuzz_inputs.py --seconds 600 --seed 1
    .venv/bin/python tests/fuzz_inputs.py --surface studies --seconds 600 --seed 1

Run by tests/guard/test_fuzz.py for a few seconds; docs/benchmarks.md records longer runs.
"""

import sys

from fuzz.cli import main

if __name__ == "__main__":
    sys.exit(main())
