"""Loaded at start-up by a benchmark server that has this directory on ``PYTHONPATH``: installs
the lag probe when ``BENCH_LAG_FILE`` is set (``lagprobe.py``)."""

import lagprobe

lagprobe.install()
