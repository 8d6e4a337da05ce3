"""Serving many people at once: the scheduler of model work (no Streamlit here)."""
