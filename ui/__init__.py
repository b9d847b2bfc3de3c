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
