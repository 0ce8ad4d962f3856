#!/usr/bin/env python3
"""Trains LeNet-300-100 on Fashion-MNIST in PyTorch and saves its state dict for `topiary import`.

    python3 pytorch_lenet.py [OUT.safetensors] [EPOCHS]
    topiary import --model OUT.safetensors --arch 784-300-100-10 --input-scale 255 --mean 0.2860 --std 0.3530 --output lenet.safetensors
    topiary eval --model lenet.safetensors

Needs torch, numpy and safetensors; reads the IDX files of Debian's dataset-fashion-mnist."""
import gzip, sys
import numpy as np, torch, torch.nn as nn
from safetensors.torch import save_file

DATA, MEAN, STD = "/usr/share/datasets/fashion-mnist/", 0.2860, 0.3530

def idx(name, offset):
    return np.frombuffer(gzip.open(DATA + name).read(), np.uint8, offset=offset)

class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 300), nn.Linear(300, 100), nn.Linear(100, 10)
    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

def inputs(name):  # ToTensor() then Normalize((MEAN,), (STD,)), flattened
    return (torch.tensor(idx(name, 16).reshape(-1, 784), dtype=torch.float32) / 255 - MEAN) / STD

if __name__ == "__main__":
    out, epochs = (sys.argv[1] if len(sys.argv) > 1 else "lenet-pytorch.safetensors"), int(sys.argv[2]) if len(sys.argv) > 2 else 3
    torch.manual_seed(0)
    x, y = inputs("train-images-idx3-ubyte.gz"), torch.tensor(idx("train-labels-idx1-ubyte.gz", 8), dtype=torch.long)
    xt, yt = inputs("t10k-images-idx3-ubyte.gz"), torch.tensor(idx("t10k-labels-idx1-ubyte.gz", 8), dtype=torch.long)
    model, loss = LeNet(), nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(epochs):
        for batch in torch.randperm(len(x)).split(128):
            optimizer.zero_grad()
            loss(model(x[batch]), y[batch]).backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = (model(xt).argmax(1) == yt).float().mean().item()
    save_file(model.state_dict(), out)
    print(f"PyTorch LeNet-300-100, {epochs} epochs: test accuracy {accuracy:.2%} ({int(round(accuracy * len(yt)))}/{len(yt)}); saved {out}")
