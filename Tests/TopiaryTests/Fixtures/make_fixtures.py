#!/usr/bin/env python3
"""Writes the model files of Tests/TopiaryTests/Fixtures without Topiary (the standard library only).

good-v2.safetensors is a valid version-2 file, 6-4-3, layer 0 compressed (CSR) and layer 1
masked (packed bits): a second implementation of the layouts that Model.load must read. Every
file in hostile/ breaks one rule of those layouts and must be refused with a TopiaryError that
names the file. Run from anywhere; the output is deterministic:

    python3 Tests/TopiaryTests/Fixtures/make_fixtures.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = {"F32": 4, "F16": 2, "I32": 4, "I64": 8, "U32": 4, "U16": 2, "U8": 1}
PACK = {"F32": "<f", "F16": "<e", "I32": "<i", "I64": "<q", "U32": "<I", "U16": "<H", "U8": "<B"}


def tensor(dtype, shape, values):
    """(dtype, shape, bytes) of little-endian values."""
    data = b"".join(struct.pack(PACK[dtype], v) for v in values)
    return (dtype, list(shape), data)


def raw(dtype, shape, data):
    return (dtype, list(shape), bytes(data))


def write(path, metadata, tensors):
    header = {"__metadata__": metadata}
    offset, blobs = 0, []
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def base():
    """The valid 6-4-3 model: metadata and tensors, fresh each call."""
    metadata = {"format": "topiary", "format_version": "2", "architecture": "6-4-3",
                "activations": "relu,identity", "layer_encodings": "csr,masked",
                "input_scale": "1.0", "input_mean": "0.0", "input_std": "1.0"}
    tensors = {
        # Layer 0, 4×6 in CSR form. Row 0: (0, 0.5) (2, −1); row 1 empty; row 2: (1, 0.25)
        # (3, 0.0 kept) (5, 2); row 3: (4, −0.75).
        "layers.0.values": tensor("F32", [6], [0.5, -1.0, 0.25, 0.0, 2.0, -0.75]),
        "layers.0.col_indices": tensor("U16", [6], [0, 2, 1, 3, 5, 4]),
        "layers.0.row_offsets": tensor("I32", [5], [0, 2, 2, 5, 6]),
        "layers.0.bias": tensor("F32", [4], [0.1, 0.2, 0.3, 0.4]),
        # Layer 1, 3×4 masked. Mask 1011 0100 1111, least significant bit first: 0x2D, 0x0F.
        "layers.1.weight": tensor("F32", [3, 4], [1.0, 0.0, 2.0, 3.0, 0.0, 4.0, 0.0, 0.0, 5.0, 6.0, 7.0, 8.0]),
        "layers.1.mask": raw("U8", [2], [0x2D, 0x0F]),
        "layers.1.bias": tensor("F32", [3], [0.0, 1.0, -1.0]),
    }
    return metadata, tensors


def hostile():
    """name → (metadata, tensors), each breaking one rule."""
    cases = {}

    def case(name, edit):
        metadata, tensors = base()
        edit(metadata, tensors)
        cases[name] = (metadata, tensors)

    def put(name, value):
        return lambda m, t: t.__setitem__(name, value)

    def meta(key, value):
        return lambda m, t: m.__setitem__(key, value) if value is not None else m.pop(key)

    # CSR row offsets.
    case("csr-offsets-decrease", put("layers.0.row_offsets", tensor("I32", [5], [0, 3, 2, 5, 6])))
    case("csr-offsets-not-from-zero", put("layers.0.row_offsets", tensor("I32", [5], [1, 2, 2, 5, 6])))
    case("csr-offsets-disagree-with-nnz", put("layers.0.row_offsets", tensor("I32", [5], [0, 2, 2, 5, 5])))
    case("csr-offsets-wrong-shape", put("layers.0.row_offsets", tensor("I32", [6], [0, 2, 2, 5, 6, 6])))
    case("csr-offsets-wrong-dtype", put("layers.0.row_offsets", tensor("U32", [5], [0, 2, 2, 5, 6])))
    # CSR column indices.
    case("csr-column-out-of-range", put("layers.0.col_indices", tensor("U16", [6], [0, 2, 1, 3, 5, 6])))
    case("csr-column-negative", put("layers.0.col_indices", tensor("I32", [6], [0, 2, 1, 3, 5, -1])))
    case("csr-columns-unsorted", put("layers.0.col_indices", tensor("U16", [6], [0, 2, 3, 1, 5, 4])))
    case("csr-columns-duplicated", put("layers.0.col_indices", tensor("U16", [6], [0, 2, 1, 1, 5, 4])))
    case("csr-indices-wrong-dtype", put("layers.0.col_indices", tensor("F16", [6], [0, 2, 1, 3, 5, 4])))
    case("csr-indices-count-disagrees", put("layers.0.col_indices", tensor("U16", [5], [0, 2, 1, 3, 5])))
    case("csr-indices-missing", lambda m, t: t.pop("layers.0.col_indices"))
    # CSR values.
    case("csr-values-wrong-dtype", put("layers.0.values", tensor("I32", [6], [1, 2, 3, 4, 5, 6])))
    case("csr-values-nan", put("layers.0.values", tensor("F32", [6], [0.5, -1.0, float("nan"), 0.0, 2.0, -0.75])))
    case("csr-values-f16-infinity", put("layers.0.values", tensor("F16", [6], [0.5, -1.0, float("inf"), 0.0, 2.0, -0.75])))
    case("csr-with-dense-weight", put("layers.0.weight", tensor("F32", [4, 6], [0.0] * 24)))

    # A layer wider than 65,536 inputs cannot use 16-bit column indices.
    def wide(m, t):
        m.update({"architecture": "70000-1", "activations": "identity", "layer_encodings": "csr"})
        t.clear()
        t.update({"layers.0.values": tensor("F32", [0], []), "layers.0.col_indices": tensor("U16", [0], []),
                  "layers.0.row_offsets": tensor("I32", [2], [0, 0]), "layers.0.bias": tensor("F32", [1], [0.0])})
    case("csr-narrow-indices-for-wide-layer", wide)

    # An architecture whose dense form would not fit a model file, described in a few bytes.
    def huge(m, t):
        m.update({"architecture": "2000000000-1", "activations": "identity", "layer_encodings": "csr"})
        t.clear()
        t.update({"layers.0.values": tensor("F32", [0], []), "layers.0.col_indices": tensor("I32", [0], []),
                  "layers.0.row_offsets": tensor("I32", [2], [0, 0]), "layers.0.bias": tensor("F32", [1], [0.0])})
    case("architecture-too-large", huge)

    # Packed masks.
    case("mask-too-few-bytes", put("layers.1.mask", raw("U8", [1], [0x2D])))
    case("mask-padding-bits-set", put("layers.1.mask", raw("U8", [2], [0x2D, 0xFF])))
    case("mask-one-byte-per-weight", put("layers.1.mask", raw("U8", [3, 4], [1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1])))
    case("mask-missing", lambda m, t: t.pop("layers.1.mask"))
    case("masked-weight-where-pruned", put("layers.1.weight", tensor("F32", [3, 4], [1.0, 9.0, 2.0, 3.0, 0.0, 4.0, 0.0, 0.0, 5.0, 6.0, 7.0, 8.0])))
    case("masked-weight-infinite", put("layers.1.weight", tensor("F32", [3, 4], [float("inf"), 0.0, 2.0, 3.0, 0.0, 4.0, 0.0, 0.0, 5.0, 6.0, 7.0, 8.0])))
    case("bias-mask-wrong-size", put("layers.1.bias_mask", raw("U8", [2], [0x07, 0x00])))

    # Metadata.
    case("encoding-unknown", meta("layer_encodings", "csr,sparse"))
    case("encodings-count-disagrees", meta("layer_encodings", "csr"))
    case("encodings-missing", meta("layer_encodings", None))
    case("format-version-3", meta("format_version", "3"))
    return cases


def main():
    metadata, tensors = base()
    write(os.path.join(HERE, "good-v2.safetensors"), metadata, tensors)
    folder = os.path.join(HERE, "hostile")
    os.makedirs(folder, exist_ok=True)
    for old in os.listdir(folder):
        if old.endswith(".safetensors"):
            os.remove(os.path.join(folder, old))
    for name, (metadata, tensors) in sorted(hostile().items()):
        write(os.path.join(folder, name + ".safetensors"), metadata, tensors)


if __name__ == "__main__":
    main()
