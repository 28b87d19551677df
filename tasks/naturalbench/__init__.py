"""NaturalBench task."""
