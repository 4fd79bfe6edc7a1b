"""Benchmark suite: the service beside the limit server under wrk (`python -m bench`)."""
