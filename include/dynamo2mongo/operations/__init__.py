"""Operating migrations: cut-over and rollback, table-by-table plans, status, the monitor and the dashboard."""
