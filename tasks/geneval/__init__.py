"""GenEval: object-focused compositional text-to-image benchmark (detector-based verdicts)."""
