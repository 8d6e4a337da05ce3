"""``python -m explain features ...``: the batch feature job (``explain.jobs.features``)."""

import sys

from explain.jobs.features import entry

entry(sys.argv[1:])
