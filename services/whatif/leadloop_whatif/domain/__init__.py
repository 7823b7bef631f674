"""whatif's pure core: the history, the replay and the comparison."""
