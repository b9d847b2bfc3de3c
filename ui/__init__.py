"""The Streamlit-aware layer between the pages and `core/`.

- `ui.cache`: every Streamlit cache (data, shared models, reports, maps, figures, sweeps).
- `ui.jobs`: long computations in background threads with live progress bars.
- `ui.setup`: the frozen configs the sidebar decides (`Setup`, `train_config`).
- `ui.sidebar` and `ui.url_state`: the shared sidebar, and every setting kept in the URL.
- `ui.panels`: pieces several pages draw (charts with captions, metric cards, saliency panels).
- `ui.lessons`, `ui.downloads`, `ui.own_model`: guided lessons, export files, uploaded weights.
- `ui.prepare`, `ui.ab`, `ui.glossary`: "Prepare the class", the A/B view's frozen setting, the glossary.

Pages import what they need from here: `setup = ui.current_setup()`, then cached calls.
"""
from ui.cache import comparison_summary, diagnosis, diagnosis_figures  # issue 10 §1, §4
from ui.diagnosis_view import summary_box
from ui.cache import (_training_job, available_methods, distill_comparison, distill_methods, distill_problem,
                      distilled_students, subset_comparison, compressed_maps, compressed_model,
                      explanation_quality, class_maps, first_filters, global_embedding, silent_units,
                      dataset, families_table, freeze_heap, largest_layer, layer_labels, metrics_csv, original_evaluation,
                      original_maps, own_input, own_maps, own_predictions, pie_table, population_saliency, prefetch_population,
                      population_view, prefetch_neighbours, randomization, randomization_pictures, report,
                      scrub_figure, sparsity_figure, sweep_check, sweep_table, sweep_tables, trained_model,
                      tradeoff_rows,
                      trained_models, weight_heatmaps, weight_histograms)
# Layer sensitivity (issue 9 §3)
from ui.cache import (plan_check, plan_figures, plan_search_result, sensitivity_problem, sensitivity_table,
                      uniform_settings)
from ui.sidebar import apply_plan
from ui.ab import clear as ab_clear
from ui.ab import freeze as ab_freeze
from ui.ab import frozen_setup as ab_frozen_setup
from ui.ab import swap as ab_swap
from ui.downloads import file_stem, report_file, view_link, weights_file
from ui.lessons import all_lessons, start_lesson
from ui.own_model import FILE_KEY as OWN_MODEL_FILE_KEY
from ui.own_model import accept_file as accept_own_model
from ui.own_model import current as own_model
from ui.own_model import forget as forget_own_model
from ui.own_model import refusal as own_model_refusal
from ui.own_model import refusal_detail as own_model_refusal_detail
from ui.own_model import show_upload_settings as show_own_model_settings
from ui.own_model import use_toggle as own_model_toggle
from ui.prepare import prepare_panel
from ui.setup import Setup, UploadedTrain, train_config
from ui.panels import (chart, delta, describe_setup, grid_chart, layer_table, metric_cards, percent, pick_images,
                       saliency_panels, wide_chart)
from ui.sidebar import current_setup, sidebar
from ui.url_state import SETTINGS, presenting
from ui.url_state import fit as fit_setting
from ui.url_state import sync as sync_url

__all__ = [
    "comparison_summary", "diagnosis", "diagnosis_figures", "summary_box",  # issue 10 §1, §4
    "OWN_MODEL_FILE_KEY", "SETTINGS", "Setup", "UploadedTrain", "_training_job", "ab_clear", "ab_freeze",
    "ab_frozen_setup", "ab_swap", "accept_own_model",
    "all_lessons", "available_methods", "chart", "compressed_maps", "compressed_model", "current_setup",
    "dataset", "delta", "families_table", "distill_comparison", "distill_methods", "distill_problem", "distilled_students",
    "subset_comparison", "describe_setup", "file_stem", "fit_setting", "forget_own_model", "freeze_heap", "grid_chart",
    "largest_layer", "layer_labels", "layer_table", "metric_cards", "metrics_csv", "original_evaluation",
    "original_maps",
    "own_input", "own_maps", "own_model", "own_model_refusal", "own_model_refusal_detail", "own_model_toggle",
    "own_predictions", "percent", "pick_images", "pie_table", "prefetch_population", "prepare_panel",
    "population_saliency", "population_view",
    "prefetch_neighbours", "presenting", "randomization", "randomization_pictures", "report", "report_file",
    "saliency_panels", "scrub_figure", "show_own_model_settings", "sidebar", "sparsity_figure",
    "start_lesson", "sweep_check", "sweep_table", "sweep_tables", "sync_url", "tradeoff_rows", "train_config",
    "trained_model", "trained_models", "view_link",
    "weight_heatmaps", "weight_histograms", "weights_file", "wide_chart",
    # Layer sensitivity (issue 9 §3)
    "apply_plan", "plan_check", "plan_figures", "plan_search_result", "sensitivity_problem", "sensitivity_table",
    "uniform_settings",
]

# Deployment (issue 9 §1-2): real files, measured beside theory.
from ui.cache import deployment, plain  # noqa: E402
from ui.downloads import onnx_config_file, onnx_file, packed_file  # noqa: E402

__all__ += ["deployment", "onnx_config_file", "onnx_file", "packed_file", "plain"]

# Packed weights of every family (issue 9 §1, issue 8 §4): the download with its size, and a check of a file.
from ui.cache import packed_check  # noqa: E402
from ui.downloads import onnx_codebook_file, packed_download  # noqa: E402

__all__ += ["onnx_codebook_file", "packed_check", "packed_download"]
# Compare families: the distilled student's lines (issue 8 §3).
from ui.cache import families_student  # noqa: E402

__all__ += ["families_student"]
# A class on one process (issue 11 §2): figures shared per setting, runs counted for the prefetcher.
from ui.cache import per_class_figure, run_started  # noqa: E402
from ui import page_frame, page_run, rerun_requests  # noqa: E402 (the page fragment: app.py)
from ui.sidebar import strip as sidebar_strip  # noqa: E402

__all__ += ["page_run", "per_class_figure", "run_started", "sidebar_strip"]
# Once per process, as the app is first imported (a server's first run, or scripts/replica.py before it
# serves): a main slider's move runs only the page fragment, and a browser back from another replica gets its
# first click counted.
rerun_requests.install(page_frame.PAGE, page_frame.IN_PLACE)
