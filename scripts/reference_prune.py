# An independent NumPy implementation of the pruning issue's reference protocol with PyTorch's
# rules, to check Topiary's `topiary prune` figures against: prune.l1_unstructured per layer (or
# global_unstructured) on the kept weights, 20% of the remaining weights per step with the last
# step clipped to 90%, 95%, 98%, SGD(momentum=0.9, lr=0.01) re-created per step, 1 epoch per step
# and 2 more at each milestone, CrossEntropyLoss (mean), a shuffled DataLoader of batch 128 that
# keeps the last partial batch. It starts from a Topiary dense model (and its input normalisation)
# and prints one line per step: step, sparsity, kept weights per layer, overall sparsity, test accuracy.
#
#   python3 scripts/reference_prune.py dense60k.safetensors layerwise 0 torch   # or: global, exact
#
# The model must be a 3-layer Topiary MLP (ReLU, ReLU, identity), such as LeNet-300-100. The
# IDX files are read from $FASHION_MNIST_DIR, by default /usr/share/datasets/fashion-mnist/.
#
# `torch` rounds each step's count as PyTorch does (round(amount · kept)); `exact` removes exactly
# round(s · n) in all, as Topiary does. A fifth argument `keep` carries momentum across steps.
# Needs numpy and safetensors.
import gzip, json, struct, sys, time
import numpy as np
from safetensors.numpy import load_file

if len(sys.argv) not in (5, 6) or sys.argv[2] not in ('layerwise', 'global') or sys.argv[4] not in ('torch', 'exact'):
    sys.exit('usage: reference_prune.py MODEL layerwise|global SEED torch|exact [keep]')
model, scope, seed, counts = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
keep_opt = len(sys.argv) > 5 and sys.argv[5] == "keep"

def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    magic, = struct.unpack('>I', data[:4]); nd = magic & 0xff
    dims = struct.unpack('>' + 'I' * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)

import os
D = os.environ.get('FASHION_MNIST_DIR', '/usr/share/datasets/fashion-mnist/').rstrip('/') + '/'
with open(model, 'rb') as f:
    n = struct.unpack('<Q', f.read(8))[0]
    meta = json.loads(f.read(n))['__metadata__']
sc, mu_in, sd_in = (float(meta[k]) for k in ('input_scale', 'input_mean', 'input_std'))
def norm(x):
    return ((x.reshape(len(x), -1).astype(np.float64) * sc - mu_in) / sd_in).astype(np.float32)
Xtr, ytr = norm(idx(D + 'train-images-idx3-ubyte.gz')), idx(D + 'train-labels-idx1-ubyte.gz').astype(np.int64)
Xte, yte = norm(idx(D + 't10k-images-idx3-ubyte.gz')), idx(D + 't10k-labels-idx1-ubyte.gz').astype(np.int64)

t = load_file(model)
W = [t[f'layers.{l}.weight'].copy() for l in range(3)]   # weight_orig
B = [t[f'layers.{l}.bias'].copy() for l in range(3)]
M = [np.ones_like(w) for w in W]

def forward(x):
    hs = [x]
    for l in range(3):
        z = hs[-1] @ (W[l] * M[l]).T + B[l]
        hs.append(np.maximum(z, 0) if l < 2 else z)
    return hs

def accuracy():
    return float((forward(Xte)[-1].argmax(1) == yte).mean())

rng = np.random.default_rng(seed)
vel = None
def epoch(lr=0.01, mom=0.9, bs=128):
    global vel
    order = rng.permutation(len(Xtr))
    for s in range(0, len(order), bs):
        i = order[s:s + bs]; x, y = Xtr[i], ytr[i]; b = len(i)
        hs = forward(x)
        z = hs[-1]; z = z - z.max(1, keepdims=True); p = np.exp(z); p /= p.sum(1, keepdims=True)
        g = p; g[np.arange(b), y] -= 1; g /= b
        grads = [None] * 3
        for l in (2, 1, 0):
            gw = (g.T @ hs[l]) * M[l]; gb = g.sum(0)
            grads[l] = (gw, gb)
            if l > 0:
                g = (g @ (W[l] * M[l])) * (hs[l] > 0)
        if vel is None:
            vel = [[gw.copy(), gb.copy()] for gw, gb in grads]
        else:
            for l in range(3):
                vel[l][0] = mom * vel[l][0] + grads[l][0]; vel[l][1] = mom * vel[l][1] + grads[l][1]
        for l in range(3):
            W[l] -= lr * vel[l][0]; B[l] -= lr * vel[l][1]

def prune_layer(l, k):
    # l1_unstructured on the kept entries: the k smallest |w| among mask == 1 (stable: lower index first)
    if k <= 0: return
    flat = np.flatnonzero(M[l].reshape(-1) == 1)
    mags = np.abs((W[l] * M[l]).reshape(-1)[flat])
    sel = flat[np.argsort(mags, kind='stable')[:k]]
    M[l].reshape(-1)[sel] = 0

def schedule():
    s, out = 0.0, []
    for m in (0.9, 0.95, 0.98):
        while s < m:
            nxt = 1 - (1 - s) * 0.8
            s = m if nxt >= m - 1e-9 else nxt
            out.append((s, m == s))
    return out

sizes = [w.size for w in W]
prev = 0.0
print('dense', accuracy(), flush=True)
for step, (s, milestone) in enumerate(schedule(), 1):
    if scope == 'layerwise':
        for l in range(3):
            kept = int(M[l].sum())
            if counts == 'torch':
                amount = 1 - (1 - s) / (1 - prev)
                k = round(amount * kept)          # _compute_nparams_toprune: round(amount * tensor_size)
            else:
                k = kept - (sizes[l] - round(s * sizes[l]))
            prune_layer(l, k)
    else:  # global_unstructured over the three weights
        kept_all = sum(int(m.sum()) for m in M)
        if counts == 'torch':
            k = round((1 - (1 - s) / (1 - prev)) * kept_all)
        else:
            k = kept_all - (sum(sizes) - round(s * sum(sizes)))
        cand = np.concatenate([np.where(M[l].reshape(-1) == 1, np.abs(W[l] * M[l]).reshape(-1), np.inf) for l in range(3)])
        sel = np.argsort(cand, kind='stable')[:k]
        off = np.cumsum([0] + sizes)
        for l in range(3):
            ss = sel[(sel >= off[l]) & (sel < off[l + 1])] - off[l]
            M[l].reshape(-1)[ss] = 0
    prev = s
    if not keep_opt: vel = None
    for _ in range(1 + (2 if milestone else 0)):
        epoch()
    kept = [int(m.sum()) for m in M]
    print(step, round(s, 5), kept, 1 - sum(kept) / sum(sizes), accuracy(), 'milestone' if milestone else '', flush=True)
