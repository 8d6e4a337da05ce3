"""A dataset as a whole: its features and their disk store, 2-D projections, nearest neighbours,
selections on a map, k-NN probes, and heads fitted on the features."""
