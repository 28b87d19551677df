"""UnifiedBench (Protocol-1): caption -> regenerate round-trip similarity of a unified model."""
