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
    "Calibration error": "How far a model's confidence is from how often it is right. Sort the test images into bands "
                         "by how sure the model was; in each band compare the average confidence with the "
                         "share of right answers, and average the gaps, weighted by the band's images (the expected "
                         "calibration error of Guo et al.). 0 % means honest: of the answers given with 80 % "
                         "confidence, 80 % are right.",
    "Confusion matrix": "A table of test images by true class (rows) and answer given (columns). The diagonal "
                        "holds the right answers; a cell off it counts one kind of mistake, such as a 4 read as "
                        "a 9.",
    "Completeness": "Integrated Gradients promises that a map's values add up to the change of the class score "
                    "from a black image to this one. The gap, as a share of that change, shows how well it keeps "
                    "the promise (0 = exactly).",
    "Complexity (entropy)": "How spread out a map is: the entropy of its absolute values taken as shares of "
                             "their sum. 0 when one pixel holds everything, largest (the log of the number of "
                             "pixels) when every pixel counts the same. Lower means a simpler map.",
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
    "Low-rank factorization": "Replaces a layer's weight matrix (out × in) by the product of two thin ones, "
                              "out × r and r × in, so the layer becomes two smaller layers with r·(in + out) "
                              "weights instead of in·out. The best such product for a given r comes from the "
                              "singular value decomposition: keep the r largest singular values.",
    "Max-sensitivity": "How much a map changes when the image is nudged a little at random: the largest change "
                       "over a few nudges, as a share of the map's size (Captum's sensitivity_max). Lower means a "
                       "steadier map; a map that jumps at a nudge is hard to trust.",
    "MAC": "A multiply-accumulate, one multiplication and one addition (total = total + weight × input): the basic "
           "step of a neural network. A layer with 100 inputs and 10 outputs needs 1,000 MACs per image. A pruned "
           "weight needs none in theory, but only sparse hardware or code actually skips it.",
    "IQR": "Interquartile range: the spread of the middle half of repeated measurements (from the 25th to the 75th "
           "percentile). A small IQR beside a median says the timing is stable.",
    "Latency": "How long one forward pass takes, measured on this server with one thread: for one image (batch 1) "
               "or for 256 at once. It follows memory traffic and fixed per-layer costs as much as MACs.",
    "Magnitude pruning": "Removes the weights with the smallest absolute value |w|, on the idea that they "
                         "matter least. *Random* pruning removes weights by chance: the baseline it must beat.",
    "ONNX": "An open file format for trained networks that many runtimes read. *ONNX Runtime* runs it on the CPU; "
            "its *int8* version stores weights and activations as 8-bit integers (QDQ: quantize-dequantize steps "
            "around each layer) and uses integer kernels.",
    "PCA / t-SNE": "Two ways to draw many numbers per image as a point on a page. PCA keeps the two directions in "
                   "which the points vary most (a projection, so distances mean something); t-SNE keeps neighbours "
                   "together but can stretch or shrink the space between groups.",
    "Per channel / per tensor": "Quantization rounds weights to steps of one size (the scale). Per tensor uses "
                                "one scale for a whole layer; per channel one for each output neuron or filter, "
                                "so a filter with small weights gets finer steps.",
    "Pruning": "Setting weights to exactly zero, so they no longer take part and need not be stored.",
    "Quantization": "Storing each weight with fewer bits by rounding it to one of a few allowed values.",
    "Reliability diagram": "The chart behind the calibration error: for each band of confidence, how often the "
                           "model was right. An honest model's points lie on the diagonal; points below it mean "
                           "the model is surer than it is right (over-confident).",
    "Saliency map": "A picture of which pixels the model's answer depends on most. Each explanation method "
                    "(gradient, Integrated Gradients, Occlusion, ...) defines *depends on* in its own way.",
    "Sanity check": "Adebayo et al.'s test of an explanation: randomize the model's weights layer by layer. A map "
                    "that explains the model should change; one that stays the same was only showing the image.",
    "Seed": "The number that starts the random number generator. Another seed gives other starting weights and "
            "another order of training images, so a different model of the same kind.",
    "Singular values (energy)": "A weight matrix can be written as a sum of simple layers of rank one, each "
                                "scaled by a singular value σ, largest first. The squares σ² add up to the sum of "
                                "all squared weights, its *energy*: keeping 90 % of the energy keeps the fewest "
                                "of them whose σ² make up 90 % of that sum.",
    "Sparseness (Gini index)": "How concentrated a map is: the Gini index of its absolute values, 1 when one "
                               "pixel holds everything, 0 when every pixel counts the same. Higher means fewer "
                               "pixels carry the explanation.",
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
