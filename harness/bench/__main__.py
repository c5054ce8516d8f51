import sys

from harness.bench import run

sys.exit(run())
