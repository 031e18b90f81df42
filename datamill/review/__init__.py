"""Review: queues, reviews and each sample's final state (`service.ReviewService`)."""
