"""Small leaf helpers every area shares: domain errors and enqueue-on-commit."""
