"""Loaded at start-up by a benchmark server that has this directory on ``PYTHONPATH``: installs
the lag probe when ``BENCH_LAG_FILE`` is set (``lagprobe.py``) and the GC probe when
``BENCH_GC_FILE`` is (``gcprobe.py``)."""

import gcprobe
import lagprobe

lagprobe.install()
gcprobe.install()
