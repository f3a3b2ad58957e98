"""Run folders as front-ends read them: layout, index, followers, cluster, history."""
