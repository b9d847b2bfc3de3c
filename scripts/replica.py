"""One replica of `make serve` (scripts/replicas.py): `streamlit run ...` with the app imported first.

Importing `ui` before the server starts (torch, plotly, the models' code: a few seconds) spares the
replica's first visitor that wait, and puts the app's one server-side fallback in place before any
browser arrives: a browser that failed over from a dead replica may click on this one before anyone
has run the app here (ui.rerun_requests, installed as `ui` is imported). No
cached function runs here.
Usage: the arguments of `streamlit`, e.g. `python scripts/replica.py run app.py --server.port 8601`.
"""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Decorating a cached function before the server exists makes Streamlit check it against a stand-in store
# and log a warning per function; the functions use the server's store once it runs (at their first call).
from streamlit.runtime.caching import cache_data_api  # noqa: E402 (its logger, set up as it loads)

checks = logging.getLogger(cache_data_api.__name__)
level = checks.level
checks.setLevel(logging.ERROR)
import ui  # noqa: E402, F401 (installs ui.rerun_requests)
from streamlit.web import cli  # noqa: E402

checks.setLevel(level)
sys.argv = ["streamlit", *sys.argv[1:]]
sys.exit(cli.main())
