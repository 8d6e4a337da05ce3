"""Pictures of what a model has learned: class visualization and a layer's activations."""
