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

# Run and study files fmnist wrote itself (config.json, study.json, progress.json): a sweep's progress.json
# holds every member's history, about 100 bytes per member-epoch.
MAX_JSON_BYTES = 64 * 2**20
