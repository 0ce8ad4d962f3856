"""Writes the dataset fixtures of DatasetFilesTests: small valid datasets in every layout
Topiary reads, and one hostile file per case. Run from this folder: python3 make.py"""
import gzip, io, os, struct, zipfile
import numpy as np

rng = np.random.default_rng(0)
xtr = rng.integers(0, 256, size=(40, 4, 4), dtype=np.uint8)
ytr = (np.arange(40) % 3).astype(np.int64)
xte = rng.integers(0, 256, size=(10, 4, 4), dtype=np.uint8)
yte = (np.arange(10) % 3).astype(np.int64)

np.savez_compressed("tiny.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
np.savez("tiny-float.npz", x_train=xtr.astype(np.float32) / 10, y_train=ytr.astype(np.uint8),
         x_test=xte.astype(np.float32) / 10, y_test=yte.astype(np.uint8))
os.makedirs("tiny-npy", exist_ok=True)
for name, a in [("x_train", xtr), ("y_train", ytr.astype(np.int32)), ("x_test", xte), ("y_test", yte.astype(np.int32))]:
    np.save(f"tiny-npy/{name}.npy", a)
os.makedirs("tiny-idx", exist_ok=True)
def idx(path, a, gz):
    head = struct.pack(">HBB", 0, 8, a.ndim) + b"".join(struct.pack(">I", d) for d in a.shape)
    data = head + a.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path + ".gz", "wb") as f: f.write(data)
    else:
        open(path, "wb").write(data)
idx("tiny-idx/emnist-tiny-train-images-idx3-ubyte", xtr, True)
idx("tiny-idx/emnist-tiny-train-labels-idx1-ubyte", ytr, True)
idx("tiny-idx/emnist-tiny-test-images-idx3-ubyte", xte, False)
idx("tiny-idx/emnist-tiny-test-labels-idx1-ubyte", yte, False)

os.makedirs("hostile", exist_ok=True)
def npy_bytes(a, version=None):
    b = io.BytesIO()
    if version:
        np.lib.format.write_array(b, a, version=version)
    else:
        np.save(b, a)
    return b.getvalue()
good = npy_bytes(xtr)
open("hostile/bad-magic.npy", "wb").write(b"\x93NUMPZ" + good[6:])
open("hostile/header-past-end.npy", "wb").write(good[:8] + struct.pack("<H", 60000) + good[10:])
open("hostile/big-endian.npy", "wb").write(npy_bytes(xtr.astype(">f4")))
open("hostile/fortran.npy", "wb").write(npy_bytes(np.asfortranarray(xtr.astype(np.float32))))
open("hostile/object.npy", "wb").write(npy_bytes(np.array(["a", "b"], dtype="U1")))
hdr = "{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }"
hdr = hdr + " " * (63 - len(hdr) % 64) + "\n"
open("hostile/shape-overflow.npy", "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + b"\x00" * 16)
open("hostile/short-data.npy", "wb").write(good[:-5])
open("hostile/version-9.npy", "wb").write(good[:6] + b"\x09\x00" + good[8:])
open("hostile/v2.npy", "wb").write(npy_bytes(xtr, version=(2, 0)))  # valid: version 2.0

def npz(path, arrays, compress=True):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for k, v in arrays.items():
            z.writestr(k + ".npy", npy_bytes(v))
full = dict(x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
tiny = open("tiny.npz", "rb").read()
open("hostile/truncated.npz", "wb").write(tiny[: len(tiny) - 30])
# The end record's central-directory offset past the end of the file.
eocd = tiny.rfind(b"PK\x05\x06")
open("hostile/directory-past-end.npz", "wb").write(tiny[: eocd + 16] + struct.pack("<I", len(tiny) * 2) + tiny[eocd + 20:])
npz("hostile/nan.npz", dict(x_train=np.full((4, 2), np.nan, np.float32), y_train=np.arange(4) % 2,
                            x_test=np.zeros((2, 2), np.float32), y_test=np.arange(2)))
npz("hostile/negative-label.npz", dict(x_train=xtr, y_train=ytr - 1, x_test=xte, y_test=yte))
npz("hostile/float-labels.npz", dict(x_train=xtr, y_train=ytr.astype(np.float32), x_test=xte, y_test=yte))
npz("hostile/count-mismatch.npz", dict(x_train=xtr, y_train=ytr[:39], x_test=xte, y_test=yte))
npz("hostile/width-mismatch.npz", dict(x_train=xtr, y_train=ytr, x_test=xte[:, :3, :], y_test=yte))
npz("hostile/missing-member.npz", dict(x_train=xtr, y_train=ytr, x_test=xte))
# A deflated member whose directory entries declare fewer bytes than it inflates to (a bomb).
zeros = np.zeros((4000, 100), np.uint8)
npz("hostile/bomb.npz", dict(x_train=zeros, y_train=np.arange(4000) % 2, x_test=xte, y_test=yte))
b = bytearray(open("hostile/bomb.npz", "rb").read())
for sig, size_at in [(b"PK\x01\x02", 24), (b"PK\x03\x04", 22)]:
    i = b.find(sig)
    struct.pack_into("<I", b, i + size_at, 1000)  # the first member's uncompressed size
open("hostile/bomb.npz", "wb").write(bytes(b))
# A stored member whose declared size disagrees with its data.
npz("hostile/stored-size.npz", full, compress=False)
b = bytearray(open("hostile/stored-size.npz", "rb").read())
i = b.find(b"PK\x01\x02")
struct.pack_into("<I", b, i + 24, struct.unpack_from("<I", b, i + 24)[0] + 7)
open("hostile/stored-size.npz", "wb").write(bytes(b))
# Damaged deflate data (a CRC or stream error).
b = bytearray(tiny)
i = b.find(b"PK\x03\x04")
name_len, extra_len = struct.unpack_from("<HH", b, i + 26)
start = i + 30 + name_len + extra_len
for k in range(start + 20, start + 40): b[k] ^= 0x5A
open("hostile/damaged-deflate.npz", "wb").write(bytes(b))
open("hostile/not-a-zip.npz", "wb").write(b"hello, this is not a zip archive at all\n")
