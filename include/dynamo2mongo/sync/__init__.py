"""Sync in both directions without loops or lost writes (DESIGN §2 forward/backward sync, §6, §7): the apply
logic, the per-key state and echo ledger, the quarantine, lag, and the self-hosted relays."""
