"""Domain rules as plain synchronous code: no I/O, no awaits; time is passed in as ``now``."""
