"""Every cap on what fmnist reads from a file a user hands it, in one place (docs/pictures.md states them).

Each cap is checked against the file's real length and the size its header claims, *before* anything
of that size is allocated or decompressed, so a small hostile file costs what a small file costs.
"""

# Any one input file of `predict` (picture, .npy, IDX, gzip): the full Fashion-MNIST training images are
# 47 MB uncompressed, a phone photo 3-15 MB. Read into memory at most this much, never more.
MAX_FILE_BYTES = 64 * 2**20
# The pixels an array input (.npy, IDX, gzip IDX) may decode to: 85,000 uint8 images, 10,700 float64 ones.
MAX_ARRAY_BYTES = 64 * 2**20
# Each of the four dataset files, compressed and decompressed (the largest, the training images, is 47 MB).
MAX_DATASET_FILE_BYTES = 64 * 2**20

# Pictures: the pixel count from the header, before decoding (a 48-megapixel phone photo is 8000x6000).
MAX_PIXELS = 40_000_000
# A picture larger than this on its longest side is reduced by box averaging (JPEG: decoded at a smaller
# DCT scale) before the conversion, whose float copies cost about 25 bytes per pixel: so a picture at the
# pixel limit costs what decoding it costs, at most about 320 MB (measured: a 155 kB 6324x6324 RGBA PNG)
# instead of 1 GB and more. The conversion then averages it down to 28 pixels anyway; pictures up to this
# size are converted at their full size.
WORKING_SIDE = 2048
# A .keras archive (a zip): the tutorial's model.keras is 1.1 MB; an Adam model 3.2 MB.
MAX_MODEL_BYTES = 256 * 2**20  # the file itself, .keras or .onnx
MAX_MODEL_MEMBERS = 64  # files inside (Keras writes 3: config.json, metadata.json, model.weights.h5)
MAX_MODEL_JSON_BYTES = 4 * 2**20  # config.json and metadata.json, uncompressed (the tutorial's: 6 kB)
MAX_MODEL_WEIGHTS_BYTES = 256 * 2**20  # each other member uncompressed, and every weight array in all
# Uncompressed over compressed size of a member: float weights barely compress (1.1x), JSON about 5x;
# deflate cannot exceed about 1032x, which only runs of one byte reach: a bomb.
MAX_COMPRESSION_RATIO = 200
RATIO_CHECKED_ABOVE = 2**20  # small members (a 2 kB JSON of spaces) cannot cost much whatever their ratio
# Zip members (a .keras archive's, a checkpoint's arrays) are inflated this much at a time, and never past
# the size the zip's directory declares: zipfile's read() of a whole member inflates its whole compressed
# stream in one call (a 2 MB .keras whose config.json declares 5 kB and goes on with 1 GiB of spaces: 2 GB).
ZIP_STEP = 2**20
MAX_NPZ_MEMBERS = 4096  # arrays in a checkpoint.npz (an Adam run's holds about 30)

# ONNX graphs, from static shape inference before onnxruntime sees them (guard/onnx_cost.py). fmnist's own
# exports: 17 to 47 nodes, at most 20.7 kB of intermediate tensors and 0.28 M operations per image.
MAX_ONNX_NODES = 10_000
MAX_ONNX_BYTES_PER_IMAGE = 8 * 2**20  # all intermediate tensors of one image: 400 times the exports'
# Tensors computed from the initializers alone, once per run (or folded when onnxruntime loads the file):
# this, or as much as the initializers hold if that is more (a transposed copy of the weights is as large
# as they are), so a 31 kB file cannot ask for more. The exports compute 56 to 6,328 bytes of them.
MAX_ONNX_COMPUTED_BYTES = 64 * 2**20
# Multiply-adds and elementwise steps, per image and once per run: a .keras model at its parameter limit
# (2^26) costs 2^26 multiply-adds per image; the exports about 2^18.
MAX_ONNX_OPERATIONS = 2**27
# OnnxModel.predict splits a batch so that one run's intermediate tensors stay under this (the exports:
# 13,000 to 15,000 images per run, so a 10,000-image batch is one run). onnxruntime's peak follows it: a
# graph of 4 MB per image, 600 images: 2,511 MB in one run, 354 MB in runs of this much (66 images).
ONNX_RUN_BYTES = 256 * 2**20

# Tables fmnist wrote (members.csv, history.csv, best.csv …) read back: a 100,000-member study's history
# of 10 epochs is about 100 MB and a million rows.
MAX_TABLE_BYTES = 256 * 2**20
MAX_TABLE_ROWS = 1_000_000
# A member's variables in a study's state file: 3.2 MB for Adam (the weights and two slots), 5 times that at most.
MAX_MEMBER_STATE_BYTES = 16 * 2**20

# Run and study files fmnist wrote itself (config.json, study.json, progress.json): a sweep's progress.json
# holds every member's history, about 100 bytes per member-epoch.
MAX_JSON_BYTES = 64 * 2**20
