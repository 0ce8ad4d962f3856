#!/usr/bin/env bash
# Submits a whole study to Slurm: the dense models, then N shards as a job array, then the report.
#   examples/slurm/submit.sh RECIPE FOLDER N
set -euo pipefail
recipe=${1:?usage: submit.sh RECIPE FOLDER N}
folder=${2:?usage: submit.sh RECIPE FOLDER N}
shards=${3:?usage: submit.sh RECIPE FOLDER N}
topiary=${TOPIARY:-topiary}
here=$(cd "$(dirname "$0")" && pwd)
prep=$(sbatch --parsable --job-name=topiary-prepare --cpus-per-task=2 --wrap "$topiary run $recipe --output $folder --prepare")
array=$(sbatch --parsable --dependency=afterok:"$prep" --array=1-"$shards" "$here/study.sbatch" "$recipe" "$folder")
merge=$(sbatch --parsable --dependency=afterok:"$array" --job-name=topiary-report --wrap "$topiary report $folder")
echo "submitted: prepare $prep, shards $array (1-$shards), report $merge; the report lands in $folder/report.md"
