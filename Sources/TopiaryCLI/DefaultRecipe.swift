/// The built-in study of `topiary run`: the text of `recipes/default.yaml` (a test checks that
/// the two are the same).
enum DefaultRecipe {
    static let text = """
# The built-in study: what `topiary run` does without a recipe.
# Keys are the long options of the commands, without dashes: `data` and `training` those of
# `topiary train`, each method those of `topiary prune`, `sensitivity` those of
# `topiary sensitivity`, `bench` those of `topiary bench`. Lists are comma-separated values.
name: default
description: >-
  LeNet-300-100 on Fashion-MNIST, pruned to 90, 95 and 98% of its weights by global magnitude
  (geometric and AGP schedules), layerwise and sensitivity-guided, and to half of its hidden
  neurons (structured); every final model compiled and benchmarked, compressed against dense-masked.
output: topiary-default
seeds: [0]
targets: [0.9, 0.95, 0.98]

data:
  dataset: fashion-mnist
  validation: 5000          # the last 5,000 training images: sensitivity analysis and model choice

training:
  arch: 784-300-100-10
  epochs: 15
  batch-size: 128
  optimizer: sgd
  lr: 0.05
  momentum: 0.9
  threads: 2

sensitivity:
  sparsities: [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]

methods:
  - name: global-geometric  # 20% of the remaining weights per step; 90/95/98% are milestones of one run
    scope: global
    schedule: geometric
    finetune-epochs: 1
    final-epochs: 2
  - name: global-agp        # Zhu & Gupta's cubic schedule, 10 steps, one run per target
    scope: global
    schedule: agp
    steps: 10
    finetune-epochs: 1
    final-epochs: 2
  - name: layerwise-geometric
    scope: layerwise
    schedule: geometric
    finetune-epochs: 1
    final-epochs: 2
  - name: sensitivity-geometric
    scope: sensitivity
    sensitivity-sparsities: [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]
    schedule: geometric
    finetune-epochs: 1
    final-epochs: 2
  - name: neurons-l1        # half of the hidden neurons, removed at once, then 3 epochs
    structured: neurons
    criterion: l1
    schedule: oneshot
    finetune-epochs: 0
    final-epochs: 3
    targets: [0.5]

bench:
  batch: [1, 128]
  threads: [1]
  sparsity: [0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98]

"""
}
