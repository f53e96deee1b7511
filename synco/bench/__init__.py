"""Benchmarks behind ``synco bench``: every figure is measured side by side in one process."""
