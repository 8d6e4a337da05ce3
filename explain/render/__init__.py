"""Rendering: ``pictures`` (uint8 arrays and codecs) and ``figures`` (plotly)."""
