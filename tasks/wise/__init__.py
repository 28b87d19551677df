"""WISE: world-knowledge text-to-image benchmark scored by a vision-language judge."""
