"""pytest plugin of the contract suite: fixtures, markers and hypothesis profiles."""
