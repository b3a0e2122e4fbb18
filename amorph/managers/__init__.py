"""Running flows: here into the store, as resumable campaigns, and on clusters (jobflow-remote)."""
