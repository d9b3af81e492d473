"""Node agent: registers the node, runs its pods with its own container runtime, images and network."""
