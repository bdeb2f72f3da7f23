"""Benchmarks of the template against the physical floor (issue 4): `python -m benchmarks`."""
