"""After the sync runs (DESIGN §2 indexes and verify): deferred indexes and the comparison of both sides."""
