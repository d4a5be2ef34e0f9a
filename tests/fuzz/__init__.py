"""A bounded fuzzer for what users hand to fmnist: mutated PNG, JPEG, .npy, IDX (raw and gzip), .keras and
.onnx files, and checkpoints; study and run folders; HTTP requests.

Every mutated input must end as a prediction or an error row of ``fmnist predict`` (``images.read_inputs``
then ``predict.predict``), and every mutated ``.keras`` file (its bytes, or its zip headers: declared sizes
against the streams), ``.onnx`` graph (operators, shapes, attributes, initializers, side branches that
make large tensors or loop) and ``checkpoint.npz`` (its zip headers) as a loaded model (checkpoint) or a
``DataError``: anything else is a crash. It also feeds a few decompression bombs once. ``--surface``
chooses other surfaces: ``studies`` (a small sweep's files changed one at a time, then ``fmnist report``
and ``fmnist sweep --resume``), ``reports`` (an evaluated run's files, then ``fmnist report``) and
``http`` (requests to ``fmnist serve``); each function's docstring says what counts as a crash there.
Run by tests/guard/test_fuzz.py for a few seconds; run longer by hand for docs/benchmarks.md:

    .venv/bin/python tests/fuzz_inputs.py --seconds 600 --seed 1
    .venv/bin/python tests/fuzz_inputs.py --surface studies --seconds 600 --seed 1

It prints one JSON line: inputs (cases) tried, outcomes, crashes (with the first tracebacks), and the
process's peak memory (``VmHWM``).

One module per surface, over shared parts:

- ``seeds``: the valid inputs mutations start from (pictures, .npy, IDX, a .keras archive, a checkpoint's
  members), and the PNG writers the tests reuse;
- ``mutations``: byte, JSON and zip-header mutations, shared by every surface;
- ``onnx_graphs``: the ONNX seed graph and its mutations (side branches that make large tensors or loop);
- ``outcomes``: the tally of outcomes and crashes, and peak memory;
- ``inputs``: the default surface, files ``fmnist predict`` and model loading read;
- ``folder_changes`` and ``folders``: ``studies`` and ``reports``, one file of a folder changed, then
  ``fmnist report`` (and ``fmnist sweep --resume``);
- ``http_requests``: ``http``, mutated requests to a real ``fmnist serve``;
- ``cli``: the command line (``tests/fuzz_inputs.py`` calls its ``main``).
"""
