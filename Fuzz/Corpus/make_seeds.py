#!/usr/bin/env python3
"""Writes the seed corpus of the fuzzing targets (docs/fuzzing.md) with the standard library only:
the fixtures of Tests/TopiaryTests/Fixtures (valid and hostile files, copied), and small valid
files that reach every branch of the readers: a model in each encoding and dtype, PyTorch state
dicts, .npy files of every dtype and version, .npz archives stored and deflated, IDX files raw,
gzip and multi-member gzip. Deterministic; run from anywhere:

    python3 Fuzz/Corpus/make_seeds.py
"""
import gzip
import io
import json
import os
import shutil
import struct
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "Tests", "TopiaryTests", "Fixtures")
sys.dont_write_bytecode = True
sys.path.insert(0, FIXTURES)
from make_fixtures import raw, tensor, write  # noqa: E402  (the fixtures' safetensors writer)


def folder(name):
    path = os.path.join(HERE, name)
    os.makedirs(path, exist_ok=True)
    return path


def copy(sources, target, suffixes):
    for source in sources:
        for name in sorted(os.listdir(source)):
            if name.endswith(suffixes) or (suffixes == () and os.path.isfile(os.path.join(source, name))):
                shutil.copyfile(os.path.join(source, name), os.path.join(target, name))


def model_seeds(out):
    copy([FIXTURES, os.path.join(FIXTURES, "hostile")], out, (".safetensors",))
    base = {"format": "topiary", "input_scale": "0.003921569", "input_mean": "0.2860", "input_std": "0.3530"}
    w0 = [0.5, 0.0, -1.0, 0.0, 0.0, 0.25, 0.0, 2.0, 0.0, 0.0, -0.75, 0.0]  # 4×3
    w1 = [1.0, 0.0, 2.0, 0.0, 0.0, 3.0, 0.0, -4.0]                          # 2×4
    b0, b1 = [0.1, 0.0, 0.3, -0.2], [0.0, 1.0]
    # Version 1, every layer dense; with a recipe, an epoch and a provenance record.
    recipe = {"sizes": [3, 4, 2], "hidden_activation": "relu", "output_activation": "identity",
              "optimizer": {"kind": "sgd", "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 0},
              "learning_rate_schedule": "constant", "epochs": 2, "batch_size": 4, "seed": 0,
              "validation_count": 0, "standardized": True, "threads": 1}
    write(os.path.join(out, "seed-v1-dense.safetensors"),
          dict(base, format_version="1", architecture="3-4-2", activations="relu,identity",
               training_recipe=json.dumps(recipe, separators=(",", ":"), sort_keys=True), training_epoch="1",
               pruning_provenance=json.dumps({"method": "magnitude", "steps": 1, "source": "a.safetensors"}),
               note="user metadata"),
          {"layers.0.weight": tensor("F32", [4, 3], w0), "layers.0.bias": tensor("F32", [4], b0),
           "layers.1.weight": tensor("F32", [2, 4], w1), "layers.1.bias": tensor("F32", [2], b1)})
    # Version 1 with one-byte masks (weights and biases), as Topiary wrote before the encodings.
    m0 = [1 if v != 0 else 0 for v in w0]
    write(os.path.join(out, "seed-v1-masks.safetensors"),
          dict(base, format_version="1", architecture="3-4-2", activations="tanh,sigmoid"),
          {"layers.0.weight": tensor("F32", [4, 3], w0), "layers.0.mask": raw("U8", [4, 3], m0),
           "layers.0.bias": tensor("F32", [4], b0), "layers.0.bias_mask": raw("U8", [4], [1, 0, 1, 1]),
           "layers.1.weight": tensor("F32", [2, 4], w1), "layers.1.bias": tensor("F32", [2], b1)})

    def pack(bits):
        out = bytearray((len(bits) + 7) // 8)
        for i, b in enumerate(bits):
            if b:
                out[i // 8] |= 1 << (i % 8)
        return list(out)

    def csr(w, rows, cols):
        values, columns, offsets = [], [], [0]
        for i in range(rows):
            for j in range(cols):
                if w[i * cols + j] != 0:
                    values.append(w[i * cols + j])
                    columns.append(j)
            offsets.append(len(values))
        return values, columns, offsets

    v0, c0, o0 = csr(w0, 4, 3)
    v1, c1, o1 = csr(w1, 2, 4)
    # Version 2: masked then CSR (U16 columns, I32 offsets, F32 values), a packed bias mask.
    write(os.path.join(out, "seed-v2-masked-csr.safetensors"),
          dict(base, format_version="2", architecture="3-4-2", activations="relu,identity", layer_encodings="masked,csr"),
          {"layers.0.weight": tensor("F32", [4, 3], w0), "layers.0.mask": raw("U8", [2], pack(m0)),
           "layers.0.bias": tensor("F32", [4], b0),
           "layers.1.values": tensor("F32", [len(v1)], v1), "layers.1.col_indices": tensor("U16", [len(c1)], c1),
           "layers.1.row_offsets": tensor("I32", [3], o1), "layers.1.bias": tensor("F32", [2], b1),
           "layers.1.bias_mask": raw("U8", [1], pack([0, 1]))})
    # Version 2: CSR with F16 values, I32 columns, I64 offsets; then dense.
    write(os.path.join(out, "seed-v2-csr-f16-wide.safetensors"),
          dict(base, format_version="2", architecture="3-4-2", activations="relu,identity", layer_encodings="csr,dense"),
          {"layers.0.values": tensor("F16", [len(v0)], v0), "layers.0.col_indices": tensor("I32", [len(c0)], c0),
           "layers.0.row_offsets": tensor("I64", [5], o0), "layers.0.bias": tensor("F32", [4], b0),
           "layers.1.weight": tensor("F32", [2, 4], w1), "layers.1.bias": tensor("F32", [2], b1)})
    # Version 2: an empty CSR layer (every weight pruned) and three layers.
    write(os.path.join(out, "seed-v2-csr-empty.safetensors"),
          dict(base, format_version="2", architecture="3-2-2-1", activations="relu,relu,identity", layer_encodings="csr,masked,dense"),
          {"layers.0.values": tensor("F32", [0], []), "layers.0.col_indices": tensor("U16", [0], []),
           "layers.0.row_offsets": tensor("I32", [3], [0, 0, 0]), "layers.0.bias": tensor("F32", [2], [0, 0]),
           "layers.1.weight": tensor("F32", [2, 2], [1, 0, 0, 1]), "layers.1.mask": raw("U8", [1], pack([1, 0, 0, 1])),
           "layers.1.bias": tensor("F32", [2], [0, 0]),
           "layers.2.weight": tensor("F32", [1, 2], [1, -1]), "layers.2.bias": tensor("F32", [1], [0.5])})
    # PyTorch state dicts (the import reads the same container).
    write(os.path.join(out, "seed-pytorch-fc.safetensors"), {"format": "pt"},
          {"fc1.weight": tensor("F32", [4, 3], w0), "fc1.bias": tensor("F32", [4], b0),
           "fc2.weight": tensor("F32", [2, 4], w1), "fc2.bias": tensor("F32", [2], b1)})
    write(os.path.join(out, "seed-pytorch-sequential-f16.safetensors"), {},
          {"net.0.weight": tensor("F16", [4, 3], w0), "net.0.bias": tensor("F16", [4], b0),
           "net.2.weight": tensor("F16", [2, 4], w1)})
    write(os.path.join(out, "seed-pytorch-shapes-only.safetensors"), {},
          {"b.weight": tensor("F32", [2, 4], w1), "a.weight": tensor("F32", [4, 3], w0)})
    # Many layers whose names do not chain and whose shapes cannot decide (ordering them took
    # quadratic time: 4000 such layers took minutes).
    write(os.path.join(out, "seed-pytorch-unchained-many.safetensors"), {},
          {"l%d.weight" % i: tensor("F32", [2, 1], [0.5, 0.25]) for i in range(40)})


def npy(descr, shape, data, version=(1, 0), fortran=False):
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
        descr, "True" if fortran else "False", "(%s)" % "".join("%d," % d for d in shape) if len(shape) != 1 else "(%d,)" % shape[0])
    prefix = 10 if version == (1, 0) else 12
    header += " " * ((64 - (prefix + len(header) + 1) % 64) % 64) + "\n"
    size = struct.pack("<H", len(header)) if version == (1, 0) else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes(version) + size + header.encode("latin1") + data


def npy_seeds(out):
    datasets = os.path.join(FIXTURES, "datasets")
    copy([os.path.join(datasets, "tiny-npy"), os.path.join(datasets, "hostile")], out, (".npy",))
    seeds = {
        "u1-2x3.npy": npy("|u1", (2, 3), bytes(range(6))),
        "b1.npy": npy("|b1", (4,), b"\x00\x01\x01\x00"),
        "i1.npy": npy("|i1", (3,), struct.pack("<3b", -1, 0, 2)),
        "u2.npy": npy("<u2", (2,), struct.pack("<2H", 1, 65535)),
        "i2.npy": npy("<i2", (2,), struct.pack("<2h", -3, 3)),
        "u4.npy": npy("<u4", (2,), struct.pack("<2I", 0, 9)),
        "i4-labels.npy": npy("<i4", (3, 1), struct.pack("<3i", 0, 1, 2)),
        "u8.npy": npy("<u8", (2,), struct.pack("<2Q", 1, 2**64 - 1)),
        "i8.npy": npy("<i8", (2,), struct.pack("<2q", -1, 5)),
        "f4.npy": npy("<f4", (2, 2), struct.pack("<4f", 0.5, -1, 3.25, 0)),
        "f8-native.npy": npy("=f8", (2,), struct.pack("<2d", 1e-3, 7)),
        "scalar.npy": npy("<f4", (), struct.pack("<f", 1.5)),
        "empty.npy": npy("|u1", (0, 4), b""),
        "v2-f4.npy": npy("<f4", (1, 2), struct.pack("<2f", 1, 2), version=(2, 0)),
        "v3-u1.npy": npy("|u1", (3,), b"\x01\x02\x03", version=(3, 0)),
        "big-endian-u1.npy": npy(">u1", (2,), b"\x05\x06"),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)


def npz(arrays, method):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", method) as z:
        for name, data in arrays.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = method
            z.writestr(info, data)
    return b.getvalue()


def npz_seeds(out):
    datasets = os.path.join(FIXTURES, "datasets")
    copy([datasets, os.path.join(datasets, "hostile")], out, (".npz",))
    x = npy("|u1", (4, 2), bytes([0, 255, 10, 20, 30, 40, 50, 60]))
    y = npy("<i8", (4,), struct.pack("<4q", 0, 1, 2, 1))
    xf = npy("<f4", (3, 2), struct.pack("<6f", 0.5, 1, -1, 2, 0, 0.25))
    yf = npy("|u1", (3, 1), b"\x01\x00\x01")
    small = {"x_train.npy": x, "y_train.npy": y, "x_test.npy": x, "y_test.npy": y}
    for name, data in {"small-stored.npz": npz(small, zipfile.ZIP_STORED),
                       "small-deflated.npz": npz(small, zipfile.ZIP_DEFLATED),
                       "float-stored.npz": npz({"x_train": xf, "y_train": yf, "x_test": xf, "y_test": yf}, zipfile.ZIP_STORED)}.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)


def idx(dims, data):
    return struct.pack(">HBB", 0, 8, len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)


def gz(data):
    b = io.BytesIO()
    with gzip.GzipFile(fileobj=b, mode="wb", mtime=0) as f:
        f.write(data)
    return b.getvalue()


def idx_seeds(out):
    copy([os.path.join(FIXTURES, "datasets", "tiny-idx")], out, ())
    images = idx((3, 2, 2), range(12))
    seeds = {"images-idx3": images, "labels-idx1": idx((3,), [0, 1, 2]), "rank4-idx4": idx((1, 2, 1, 2), [9, 8, 7, 6]),
             "images-idx3.gz": gz(images), "labels-idx1.gz": gz(idx((3,), [2, 1, 0])),
             "two-members-idx3.gz": gz(images[:10]) + gz(images[10:]), "empty-idx1": idx((0,), [])}
    for name, data in seeds.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)


model_seeds(folder("model"))
npy_seeds(folder("npy"))
npz_seeds(folder("npz"))
idx_seeds(folder("idx"))
