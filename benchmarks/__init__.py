"""symdiff benchmark harness (a script, not a test suite): ``python benchmarks/run.py --help``."""
