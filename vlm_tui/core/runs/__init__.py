"""Run folders as front-ends read them: index, followers, cluster, history, steering."""
