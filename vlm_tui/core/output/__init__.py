"""What the training prints, read: the output parser, failure hints, the run state it folds into."""
