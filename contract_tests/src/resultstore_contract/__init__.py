"""The contract suite that every resultstore backend runs against itself."""
