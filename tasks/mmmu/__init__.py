"""MMMU task."""
