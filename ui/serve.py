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
    try:
        cli.main()
    finally:
        # the helper first, from this thread: at the interpreter's exit the process pool's own
        # exit hook (which runs before atexit's) would wait for a compile under way, and a
        # server told to stop in its first half minute took 38 s to exit
        from serving import projector

        projector.close_shared()


if __name__ == "__main__":
    main(sys.argv[1:])
