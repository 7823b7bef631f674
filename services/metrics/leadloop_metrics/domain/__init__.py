"""metrics' pure decisions: the closed list of metrics and how events fold into them."""
