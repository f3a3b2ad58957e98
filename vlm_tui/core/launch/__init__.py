"""From a request to a started run: plan, prepare, the command, the run folder's first records."""
