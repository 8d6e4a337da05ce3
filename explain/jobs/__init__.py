"""Batch jobs and their command line (``python -m explain features ...``)."""
