"""Benchmarks of the template against the physical floor: `python -m benchmarks`."""
