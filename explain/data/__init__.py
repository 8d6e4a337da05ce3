"""Images and datasets: loading with limits, the bundled sample photos, Animal-MNIST, zips and
server folders."""

from explain.data.composites import animals_on_photos  # noqa: F401  (the public name)
