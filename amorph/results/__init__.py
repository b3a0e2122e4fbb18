"""What a stage leaves: typed result documents, the store that holds them, and its exports."""
