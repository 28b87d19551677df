"""POPE task."""
