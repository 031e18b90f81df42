"""Review: reviewers' answers about samples, and how far reviewers agree."""
