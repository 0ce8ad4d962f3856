"""Prototype, not part of Topiary: the iterative protocol of issue 15 in PyTorch on a Topiary model,
global magnitude against Optimal Brain Surgeon on the empirical Fisher of the loss (oBERT /
WoodFisher style: blocks of B consecutive weights of a row, M per-sample gradients, dampening λ;
scores w²/(2[F⁻¹]qq) ranked globally, and the joint update of each block's pruned weights).

    python3 Benchmarks/Prototypes/fisher_obs.py magnitude|obert|obert-noupd SEED [B=49] [M=1024] [λ=1e-7]

Reads /tmp/obs/dense60k-sSEED.safetensors (`topiary train --validation 0 --threads 2 --seed SEED
--output ...`) and Fashion-MNIST from /usr/share/datasets/fashion-mnist/; 20% of the remaining
weights per step, one epoch (SGD, lr 0.01, momentum 0.9, batch 128, a fresh optimizer every epoch),
two more at 90/95/98%; prints the test accuracy and layer sparsities at each milestone.
"""
import gzip, json, struct, sys, time
import numpy as np, torch
from safetensors.numpy import load_file

method = sys.argv[1]; seed = int(sys.argv[2])
B = int(sys.argv[3]) if len(sys.argv) > 3 else 49
M = int(sys.argv[4]) if len(sys.argv) > 4 else 1024
DAMP = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-7
torch.set_num_threads(2); torch.manual_seed(seed); np.random.seed(seed)

def idx(path):
    b = gzip.open(path).read()
    n = struct.unpack('>I', b[4:8])[0]
    if b[3] == 3:
        return np.frombuffer(b, np.uint8, offset=16).reshape(n, 784)
    return np.frombuffer(b, np.uint8, offset=8)
root = '/usr/share/datasets/fashion-mnist/'
d = load_file(f'/tmp/obs/dense60k-s{seed}.safetensors')
mean, scale, std = 0.2860406, 0.003921569, 0.35302427
def norm(x): return torch.tensor((x.astype(np.float32) * scale - mean) / std)
Xtr = norm(idx(root + 'train-images-idx3-ubyte.gz')); ytr = torch.tensor(idx(root + 'train-labels-idx1-ubyte.gz').astype(np.int64))
Xte = norm(idx(root + 't10k-images-idx3-ubyte.gz')); yte = torch.tensor(idx(root + 't10k-labels-idx1-ubyte.gz').astype(np.int64))

Ws = [torch.tensor(d[f'layers.{i}.weight']).clone().requires_grad_() for i in range(3)]
bs = [torch.tensor(d[f'layers.{i}.bias']).clone().requires_grad_() for i in range(3)]
masks = [torch.ones_like(w) for w in Ws]

def forward(x):
    for i in range(3):
        z = x @ Ws[i].T + bs[i]
        x = torch.relu(z) if i < 2 else z
    return x

def acc():
    with torch.no_grad(): return (forward(Xte).argmax(1) == yte).float().mean().item() * 100

def epoch(lr=0.01):
    opt = torch.optim.SGD(Ws + bs, lr=lr, momentum=0.9)
    perm = torch.randperm(60000)
    for s in range(0, 60000, 128):
        i = perm[s:s + 128]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(forward(Xtr[i]), ytr[i]).backward()
        opt.step()
        with torch.no_grad():
            for w, m in zip(Ws, masks): w.mul_(m)

def prune_magnitude(target):
    with torch.no_grad():
        allw = torch.cat([w.abs().flatten() for w in Ws])
        total = allw.numel(); k = int(round(target * total))
        alive = torch.cat([m.flatten() for m in masks]) > 0
        scores = torch.where(alive, allw, torch.full_like(allw, -1.0))
        order = torch.argsort(scores)
        newmask = torch.ones(total); newmask[order[:k]] = 0
        o = 0
        for w, m in zip(Ws, masks):
            n = w.numel(); m.copy_(newmask[o:o + n].view_as(m)); w.mul_(m); o += n

def fisher_blocks():
    """Per layer: inverse block Fisher, shape [rows, K/B, B, B], from M per-sample gradients."""
    i = torch.randperm(60000)[:M]
    x = Xtr[i]
    h = x; acts = []; pre = []
    for l in range(3):
        acts.append(h.detach())
        z = h @ Ws[l].T + bs[l]
        z.retain_grad(); pre.append(z)
        h = torch.relu(z) if l < 2 else z
    loss = torch.nn.functional.cross_entropy(h, ytr[i], reduction='sum')   # per-sample gradient = row of grad
    loss.backward()
    invs = []
    with torch.no_grad():
        for l in range(3):
            D = pre[l].grad            # [M, rows]
            A = acts[l]                # [M, K]
            rows, K = Ws[l].shape
            b = B if K % B == 0 else K  # whole rows where B does not divide K
            nb = K // b
            Ab = A.view(M, nb, b)
            F = torch.einsum('mr,mcj,mck->rcjk', (D * D).double(), Ab.double(), Ab.double()) / M
            F += DAMP * torch.eye(b, dtype=torch.float64)
            L = torch.linalg.cholesky(F)
            invs.append((torch.cholesky_inverse(L).float(), b))
        for w in Ws + bs: w.grad = None
    return invs

def prune_obert(target):
    invs = fisher_blocks()
    with torch.no_grad():
        scores = []
        for (Fi, b), w, m in zip(invs, Ws, masks):
            rows, K = w.shape
            diag = torch.diagonal(Fi, dim1=-2, dim2=-1).reshape(rows, K)
            s = w * w / (2 * diag)
            s[m == 0] = -1
            scores.append(s.flatten())
        allsc = torch.cat(scores); total = allsc.numel(); k = int(round(target * total))
        order = torch.argsort(allsc)
        newmask = torch.ones(total); newmask[order[:k]] = 0
        o = 0
        for (Fi, b), w, m in zip(invs, Ws, masks):
            rows, K = w.shape; n = w.numel()
            nm = newmask[o:o + n].view(rows, K); o += n
            fresh = (m > 0) & (nm == 0)
            if method == 'obert':   # the joint OBS update of each block's newly pruned weights
                wb = w.view(rows, K // b, b)
                blocks = {}
                for r, c, j in fresh.view(rows, K // b, b).nonzero().tolist():
                    blocks.setdefault((r, c), []).append(j)
                for (r, c), Q in blocks.items():
                    Fi_b, Q = Fi[r, c], torch.tensor(Q)
                    wb[r, c] -= Fi_b[:, Q] @ torch.linalg.solve(Fi_b[Q][:, Q], wb[r, c, Q])
            m.copy_(nm); w.mul_(m)

if method not in ('magnitude', 'obert', 'obert-noupd'):
    sys.exit(f'unknown method {method}: magnitude, obert or obert-noupd')
prune = prune_magnitude if method == 'magnitude' else prune_obert
print("dense", f"{acc():.2f}", flush=True)
s = 0.0; res = []
t0 = time.time()
for milestone in (0.9, 0.95, 0.98):
    while s < milestone - 1e-9:
        s = min(milestone, 1 - (1 - s) * 0.8)
        prune(s)
        epoch()
    epoch(); epoch()
    res.append(acc())
    print(method, f's{seed}', f'{milestone:.2f}', f'{res[-1]:.2f}', [f'{(m == 0).float().mean().item() * 100:.1f}' for m in masks], f'{time.time() - t0:.0f}s', flush=True)
print(json.dumps({'method': method, 'seed': seed, 'B': B, 'M': M, 'damp': DAMP, 'acc': res}))
