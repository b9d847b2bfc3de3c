"""One replica of `make serve` (scripts/replicas.py): `streamlit run ...` with the app imported first.

Importing `ui` before the server starts (torch, plotly, the models' code: a few seconds) spares the
replica's first visitor that wait, and puts the app's one server-side fallback in place before any
browser arrives: a browser that failed over from a dead replica may click on this one before anyone
has run the app here (ui.reconnect.full_runs_for_lost_fragments). No cached function runs here.
Usage: the arguments of `streamlit`, e.g. `python scripts/replica.py run app.py --server.port 8601`.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ui  # noqa: E402
from streamlit.web import cli  # noqa: E402

ui.reconnect.full_runs_for_lost_fragments()
sys.argv = ["streamlit", *sys.argv[1:]]
sys.exit(cli.main())
