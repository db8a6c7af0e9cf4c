"""Self-hosted sync engines: long-running processes that apply one table's changes in one direction."""
