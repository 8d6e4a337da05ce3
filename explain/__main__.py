"""``python -m explain features ...``: the batch feature job (``explain.features_job``)."""

import sys

from .features_job import entry

entry(sys.argv[1:])
