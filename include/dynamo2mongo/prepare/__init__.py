"""Before anything changes (DESIGN §2 preflight and stream): the table described, checks run, the stream enabled."""
