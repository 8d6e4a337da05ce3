"""Serve the dashboard: ``python -m ui.serve [streamlit run options]`` is ``streamlit run app.py``
with the warm-up (ui/warm.py) started at the same moment as the server, so the first visitor's
page does not pay for the heavy imports, the default model or UMAP's compile."""

from __future__ import annotations

import sys
from pathlib import Path

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def main(argv: list[str]) -> None:
    from streamlit.web import cli

    from ui import warm

    warm.start(after_server_start=True)
    sys.argv = ["streamlit", "run", APP, *argv]
    cli.main()


if __name__ == "__main__":
    main(sys.argv[1:])
