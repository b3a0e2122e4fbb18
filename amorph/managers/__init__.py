"""Running flows: locally into the store, as resumable campaigns, and on clusters through workflow managers."""
