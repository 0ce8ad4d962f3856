#!/usr/bin/env python3
"""Topiary's predictions with NumPy alone, from any Topiary model file (dense, masked or compressed).

    python3 predict.py MODEL.safetensors INPUTS.npy|DATA.npz [--out LOGITS.npy]

INPUTS holds raw examples as in the dataset (uint8 pixels, say), any shape per example; from a .npz
it takes x_test, and y_test to print the accuracy. The file format: Topiary's docs, `LayerEncoding`."""
import json, struct, sys
import numpy as np

DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "U8": "u1", "U16": "<u2", "I32": "<i4", "I64": "<i8"}

def read_safetensors(path):
    raw = open(path, "rb").read()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + size])
    meta, data = header.pop("__metadata__", {}), raw[8 + size:]
    return {name: np.frombuffer(data[t["data_offsets"][0]:t["data_offsets"][1]], DTYPES[t["dtype"]]).reshape(t["shape"])
            for name, t in header.items()}, meta

def unpack(bits, count):  # packed masks: one bit per entry, least significant bit first
    return np.unpackbits(bits, count=count, bitorder="little").astype(np.float32)

def layer(t, i, encoding, rows, cols):
    p = f"layers.{i}."
    if encoding == "csr":
        w, offsets = np.zeros((rows, cols), np.float32), t[p + "row_offsets"].astype(np.int64)
        w[np.repeat(np.arange(rows), np.diff(offsets)), t[p + "col_indices"].astype(np.int64)] = t[p + "values"]
    else:
        w = t[p + "weight"].astype(np.float32)
        if p + "mask" in t:  # packed bits (format 2), or one byte per weight (format 1)
            mask = t[p + "mask"]
            w = w * (unpack(mask, rows * cols).reshape(rows, cols) if mask.ndim == 1 else mask.astype(np.float32))
    b = t[p + "bias"].astype(np.float32)
    return w, b * unpack(t[p + "bias_mask"], rows) if p + "bias_mask" in t else b

def predict(model_path, x):
    t, meta = read_safetensors(model_path)
    sizes = [int(s) for s in meta["architecture"].split("-")]
    encodings = meta.get("layer_encodings", ",".join(["dense"] * (len(sizes) - 1))).split(",")
    scale, mean, std = (np.float32(meta[k]) for k in ("input_scale", "input_mean", "input_std"))
    h = (x.reshape(len(x), -1).astype(np.float32) * scale - mean) / std
    act = {"identity": lambda z: z, "relu": lambda z: np.maximum(z, 0), "tanh": np.tanh,
           "sigmoid": lambda z: 1 / (1 + np.exp(-z))}
    for i, (name, enc) in enumerate(zip(meta["activations"].split(","), encodings)):
        w, b = layer(t, i, enc, sizes[i + 1], sizes[i])
        h = act[name](h @ w.T + b).astype(np.float32)
    return h

if __name__ == "__main__":
    data = np.load(sys.argv[2])
    x, y = (data["x_test"], data["y_test"]) if sys.argv[2].endswith(".npz") else (data, None)
    logits = predict(sys.argv[1], x)
    if "--out" in sys.argv: np.save(sys.argv[sys.argv.index("--out") + 1], logits)
    print(f"{len(logits)} predictions" + ("" if y is None else f", accuracy {np.mean(logits.argmax(1) == y):.2%}"))
