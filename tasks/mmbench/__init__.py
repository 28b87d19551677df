"""MMBench task (CircularEval)."""
