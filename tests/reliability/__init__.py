"""Reliability and security: closed stores, no orphaned workers, a lock per run,
whole versions, errors with the worker's message (issue 17)."""
