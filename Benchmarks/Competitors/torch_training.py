#!/usr/bin/env python3
"""One training epoch of LeNet-300-100 in PyTorch, the workload of `topiary bench --training`.

The same work as Topiary's benchmark: 60,000 synthetic images of 784 features in [-1, 1) and
random labels of 10 classes, batch 128, a new shuffle every epoch (the batch gathered by index),
ReLU hidden layers, softmax cross-entropy, SGD with learning rate 0.01 and momentum 0.9, the
summed loss and the count of correct predictions kept per epoch. Timed: one warm-up epoch, then
the median of `--runs` epochs, on `--threads` intra-op threads (`torch.set_num_threads`).

    python3 Benchmarks/Competitors/torch_training.py --threads 2 --runs 5

Prints one JSON object: the threads, the runs, each epoch's seconds and their median, the torch
version and the BLAS PyTorch was built with. Not part of the package or of CI.
"""
import argparse
import json
import re
import statistics
import time

import torch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--examples", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads < 1 or args.runs < 1 or args.examples < 1 or args.batch < 1:
        parser.error("threads, runs, examples and batch must be positive")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images = torch.rand(args.examples, 784) * 2 - 1
    labels = torch.randint(0, 10, (args.examples,))
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 300), torch.nn.ReLU(),
        torch.nn.Linear(300, 100), torch.nn.ReLU(),
        torch.nn.Linear(100, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")

    def epoch():
        order = torch.randperm(args.examples)
        total = torch.zeros(())
        correct = torch.zeros((), dtype=torch.int64)
        for start in range(0, args.examples, args.batch):
            index = order[start:start + args.batch]
            x, y = images[index], labels[index]
            optimizer.zero_grad(set_to_none=True)
            out = model(x)
            loss = loss_fn(out, y)
            (loss / x.shape[0]).backward()
            optimizer.step()
            total += loss.detach()
            correct += (out.detach().argmax(1) == y).sum()
        return float(total), int(correct)

    times = []
    for run in range(args.runs + 1):   # run 0 is the warm-up
        t0 = time.perf_counter()
        epoch()
        if run > 0:
            times.append(time.perf_counter() - t0)
    found = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    blas = found.group(1) if found else "unknown"
    print(json.dumps({"threads": args.threads, "runs": args.runs, "epoch_seconds": statistics.median(times),
                      "times": times, "torch": torch.__version__, "blas": blas}))


if __name__ == "__main__":
    main()
