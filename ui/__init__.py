"""The Streamlit-aware layer between the pages and `core/`.

- `ui.cache`: every Streamlit cache (data, shared models, reports, maps, figures).
- `ui.sidebar`: the shared sidebar and its URL state.
- `ui.panels`: pieces several pages draw (charts with captions, metric cards, saliency panels).

Pages import what they need from here: `setup = ui.current_setup()`, then cached calls.
"""
from ui.cache import (Setup, _training_job, available_methods, compressed_maps, compressed_model, dataset,
                      freeze_heap, layer_labels, original_evaluation, original_maps, pie_table, population_saliency,
                      population_view, randomization, randomization_pictures, report, sparsity_figure, sweep_check,
                      sweep_table, train_config, trained_model, trained_models, weight_heatmaps, weight_histograms)
from ui.panels import chart, describe_setup, grid_chart, metric_cards, percent, pick_images, saliency_panels
from ui.cache import own_input, own_maps, own_predictions  # your own digit
from ui.cache import prefetch_neighbours  # the next pruning step, computed in the background
from ui.sidebar import current_setup, sidebar
from ui.lessons import all_lessons, start_lesson  # guided lessons (lessons/*.toml)
from ui.sidebar import page_header
from ui.url_state import SETTINGS, fit as fit_setting, presenting, sync as sync_url  # settings in the URL

__all__ = ["Setup", "_training_job", "available_methods", "chart", "compressed_maps", "compressed_model",
           "current_setup", "dataset", "describe_setup", "freeze_heap", "grid_chart", "layer_labels",
           "metric_cards", "original_evaluation", "original_maps", "percent", "pick_images", "pie_table",
           "population_saliency", "population_view", "randomization", "randomization_pictures", "report",
           "saliency_panels", "sidebar", "sparsity_figure", "sweep_check", "sweep_table", "train_config",
           "trained_model", "trained_models", "weight_heatmaps", "weight_histograms"]
__all__ += ["own_input", "own_maps", "own_predictions"]
__all__ += ["SETTINGS", "all_lessons", "fit_setting", "page_header", "presenting", "start_lesson", "sync_url"]
# Scrubbing, export and your own weights
from ui.cache import UploadedTrain, largest_layer, metrics_csv, scrub_figure
from ui.downloads import file_stem, report_file, view_link, weights_file
from ui.own_model import FILE_KEY as OWN_MODEL_FILE_KEY, accept_file as accept_own_model, current as own_model
from ui.own_model import forget as forget_own_model, refusal as own_model_refusal
from ui.own_model import show_upload_settings as show_own_model_settings, use_toggle as own_model_toggle

__all__ += ["OWN_MODEL_FILE_KEY", "UploadedTrain", "accept_own_model", "file_stem", "forget_own_model",
            "largest_layer", "metrics_csv", "own_model", "own_model_refusal", "own_model_toggle", "report_file",
            "scrub_figure", "show_own_model_settings", "view_link", "weights_file"]
