"""Images and datasets: loading with limits, the bundled sample photos, Animal-MNIST, zips and
server folders."""
