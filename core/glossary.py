"""The app's words, explained for a first-year student: one place for every page's glossary.

`GLOSSARY` maps a term to two or three plain sentences (markdown). The one number in it, the
example of a Wilson interval, is computed (core.stats), not typed in.
"""
from __future__ import annotations

from core.stats import format_interval, wilson_interval

_EXAMPLE = format_interval(*wilson_interval(985, 1000))

GLOSSARY: dict[str, str] = {
    "Accuracy": "The share of test images the model labels correctly. The test images were never used in "
                "training, so accuracy shows how well the model does on new pictures.",
    "Agreement": "The share of test images on which the original and the compressed model give the same answer, "
                 "right or wrong. It can be lower than both accuracies suggest: the two may be wrong on "
                 "different images.",
    "Bit width": "How many bits store each weight. With b bits a weight can take at most 2^b different values "
                 "(4 bits: 16 values). 32 means ordinary floating-point numbers, no quantization.",
    "Bitmask": "One bit per weight saying *kept* or *pruned*. With it, only the kept weights need storing; the app "
               "counts whichever costs less, the bitmask or a list of the kept weights' positions.",
    "Compression ratio": "Original size ÷ compressed size. 4× means the compressed model needs a quarter of the "
                         "storage.",
    "Deletion / insertion": "Two tests of whether a saliency map is faithful. Deletion blanks the pixels the map "
                            "rates highest first: if the map is right, the model's confidence falls fast (a low "
                            "area under the curve). Insertion adds them to a blank image: confidence should rise "
                            "fast (a high area).",
    "Epoch": "One pass of training over every training image.",
    "Fake quantization": "The weights are rounded to the few values the bit width allows but kept as ordinary "
                         "floats, so the model answers exactly as a quantized one would and the explanation "
                         "methods, which need gradients, still work. Real savings in memory and speed need "
                         "integer storage and code.",
    "Fine-tuning": "A few more epochs of training after pruning, with the pruned weights held at zero, so the "
                   "remaining weights can make up for the removed ones.",
    "Forgotten example": "A test image on which the compressed models' majority vote differs from the original "
                         "models' majority vote (Hooker et al. call them *pruning identified exemplars*). "
                         "Compression changed the answer, not just the confidence.",
    "Global / per-layer pruning": "Global pruning uses one threshold for the whole network, so some layers lose "
                                  "more weights than others. Per-layer pruning removes the same share from every "
                                  "layer.",
    "Grad-CAM": "An explanation from the last convolution layer: which regions of its feature maps push the "
                "chosen class up, enlarged to the size of the image. Coarse, and only for networks with "
                "convolutions.",
    "Infidelity": "A faithfulness measure from Captum: nudge the image a little at random and compare how much "
                  "the class score changes with what the map predicts. Lower is more faithful.",
    "MAC": "A multiply-accumulate, one multiplication and one addition (total = total + weight × input): the basic "
           "step of a neural network. A layer with 100 inputs and 10 outputs needs 1,000 MACs per image. A pruned "
           "weight needs none in theory, but only sparse hardware or code actually skips it.",
    "Magnitude pruning": "Removes the weights with the smallest absolute value |w|, on the idea that they "
                         "matter least. *Random* pruning removes weights by chance: the baseline it must beat.",
    "Per channel / per tensor": "Quantization rounds weights to steps of one size (the scale). Per tensor uses "
                                "one scale for a whole layer; per channel one for each output neuron or filter, "
                                "so a filter with small weights gets finer steps.",
    "Pruning": "Setting weights to exactly zero, so they no longer take part and need not be stored.",
    "Quantization": "Storing each weight with fewer bits by rounding it to one of a few allowed values.",
    "Saliency map": "A picture of which pixels the model's answer depends on most. Each explanation method "
                    "(gradient, Integrated Gradients, Occlusion, ...) defines *depends on* in its own way.",
    "Sanity check": "Adebayo et al.'s test of an explanation: randomize the model's weights layer by layer. A map "
                    "that explains the model should change; one that stays the same was only showing the image.",
    "Seed": "The number that starts the random number generator. Another seed gives other starting weights and "
            "another order of training images, so a different model of the same kind.",
    "Sparsity": "The share of weights that are exactly zero. 90 % sparsity: nine of every ten weights are removed.",
    "Spearman correlation": "Compares two maps by ranks: sort the pixels from most to least important in each map "
                            "and compare the orders. 1 means the same order, 0 unrelated, −1 reversed. Only the "
                            "order counts, not the values.",
    "SQNR": "Signal-to-quantization-noise ratio, in decibels (dB): 10·log10 of the signal's energy over the energy "
            "of what rounding changed, ‖w‖² / ‖w − q(w)‖². Each bit fewer costs about 6 dB; 20 dB means the error "
            "holds 1 % of the energy. \"exact\" means rounding changed nothing.",
    "Layer sensitivity": "How much a model loses when ONE layer is compressed and every other layer is left as "
                         "trained. Layers that lose little can be compressed harder than the others.",
    "SSIM": "Structural similarity: compares two images patch by patch in brightness, contrast and structure. "
            "1 means identical; values near 0 mean the maps look unrelated.",
    "Structured pruning": "Removes whole neurons or convolution filters (the ones whose weights are smallest in "
                          "total) instead of single weights, so a smaller layer could take the pruned one's place. "
                          "The output classes are never removed.",
    "Symmetric / affine": "Two ways to place the allowed values. Symmetric puts them evenly around zero (from "
                          "2 bits on, zero is one of them). Affine shifts them by a *zero point*, so they can cover "
                          "weights that are not centred on zero.",
    "Top-10 % overlap": "Take the 10 % most important pixels of each of two maps: the share they have in common. "
                        "100 % means both maps point at the same pixels.",
    "Welch test": "Welch's t-test asks whether two groups' averages differ by more than their spread explains by "
                  "chance, without assuming both spread equally. Here it asks whether a class loses more (or "
                  "less) accuracy than the model as a whole; p ≤ 0.05 means chance alone would rarely do that.",
    "Wilson interval": "A range around a measured accuracy that allows for the luck of which images happen to be "
                       f"in the test set. A model right on 985 of 1,000 images has the 95 % interval {_EXAMPLE}: "
                       "its accuracy on new images of the same kind very likely lies in there, and a difference "
                       "well inside such a range may be luck.",
    "÷ max": "Each map is divided by its own largest absolute value, so every map runs from 0 to 1 (or −1 to 1). "
             "Maps of different models then share one colour scale and are compared by shape, not size.",
}


def glossary_markdown() -> str:
    """The glossary as one markdown list, terms in bold, in alphabetical order."""
    return "\n".join(f"- **{term}**: {text}" for term, text in sorted(GLOSSARY.items(), key=lambda t: t[0].lower()))
