"""Generated example inputs for the guides (no real dataset is committed)."""
