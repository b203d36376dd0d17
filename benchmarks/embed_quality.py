"""Downstream quality of the fast text encoder: the primary model and ridge, fitted on fp32 and on the new vectors.

    python benchmarks/embed.py --save-vectors .benchmarks/embed_vectors.npz     # both matrices, all synopses
    python benchmarks/embed_quality.py .benchmarks/embed_vectors.npz             # Spearman of each, and the deltas

Each matrix is written as the synopsis embedding of a copy of the pipeline's embeddings folder, and the models are
scored by the pipeline's own code (field_ablation.evaluate_set: the backtest's franchise-grouped CV folds, the
temporal backtest and the test split), so only the synopsis vectors differ between the two runs. The issue's
bound: |CV Spearman(new) - CV Spearman(fp32)| <= 0.005 for the primary model (params.yaml train.model); ridge on
the embeddings alone, the model that reads nothing else, is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from anipop.core.artifacts import ArtifactPaths, load_embeddings, save_embeddings
from anipop.core.config import load_params
from anipop.core.input_kinds import TEXT_KIND
from anipop.data.schema import PREPARED_ANIME, PREPARED_CHARACTERS, read_table
from anipop.studies.field_ablation import ablation_params, evaluate_set

REPO = Path(__file__).resolve().parents[1]
BOUND = 0.005


def _embeddings_with(source: Path, target: Path, ids: np.ndarray, vectors: np.ndarray) -> Path:
    """A copy of the pipeline's embeddings folder whose synopsis vectors are `vectors` (rows of `ids`), for the
    rows the pipeline embedded (a row it quarantined stays out, as in the pipeline)."""
    shutil.copytree(source, target)
    pipeline_ids, _ = load_embeddings(source, TEXT_KIND)
    row_of = {str(anime_id): row for row, anime_id in enumerate(ids.tolist())}
    missing = [i for i in pipeline_ids if i not in row_of]
    if missing:
        sys.exit(f"error: the vectors lack {len(missing)} synopses the pipeline embedded (e.g. anime_id {missing[0]})")
    save_embeddings(target, TEXT_KIND, pipeline_ids,
                    vectors[[row_of[i] for i in pipeline_ids]].astype(np.float32))
    return target


def _spearmans(result: dict, name: str) -> dict:
    """Spearman per part: CV {mean, sd}, temporal {value, interval}, test a number."""
    parts = result["models"].get(name, {})
    found = {}
    for part in ("cv", "temporal", "test"):
        if part in parts:
            value = parts[part]["spearman"]
            found[part] = value.get("mean", value.get("value")) if isinstance(value, dict) else value
    return found


def run(vectors: Path, models: tuple[str, ...] | None = None) -> dict:
    params = load_params(REPO / "params.yaml")
    paths = ArtifactPaths.of(params.paths)
    models = models or (params.train.model, "ridge")
    saved = np.load(vectors)
    done = saved["done"] if "done" in saved.files else np.ones(len(saved["anime_id"]), dtype=bool)
    if not done.all():
        sys.exit(f"error: {vectors}: {int((~done).sum())} of {len(done)} rows were not embedded; rerun "
                 "benchmarks/embed.py to the end (every synopsis is needed: the folds cover the whole data)")
    anime = read_table(PREPARED_ANIME, paths.prepared_anime)
    characters = read_table(PREPARED_CHARACTERS, paths.prepared_characters)
    result = {"vectors": str(vectors.name), "rows": int(len(done)), "bound": BOUND, "models": {}}
    scored = {}
    with tempfile.TemporaryDirectory(prefix="anipop-embed-quality-") as tmp:
        for label in ("baseline", "candidate"):
            folder = _embeddings_with(REPO / paths.embeddings_dir, Path(tmp) / label, saved["anime_id"],
                                      saved[label])
            run_params = ablation_params(params, params.train.inputs, list(models))
            run_params = run_params.model_copy(update={"paths": run_params.paths.model_copy(
                update={"embeddings_dir": folder})})
            print(f"{label}: scoring {list(models)} on CV, temporal and test", file=sys.stderr)
            scored[label] = evaluate_set(run_params, anime, characters)
    result["rows_scored"] = scored["baseline"]["rows"]
    for name in models:
        fp32, new = _spearmans(scored["baseline"], name), _spearmans(scored["candidate"], name)
        deltas = {part: round(new[part] - fp32[part], 5) for part in fp32}
        result["models"][name] = {"spearman_fp32": {k: round(v, 5) for k, v in fp32.items()},
                                  "spearman_new": {k: round(v, 5) for k, v in new.items()}, "delta": deltas,
                                  "cv_within_bound": abs(deltas["cv"]) <= BOUND}
        print(f"{name}: Spearman fp32 -> new, CV {fp32['cv']:.4f} -> {new['cv']:.4f} ({deltas['cv']:+.4f}), "
              f"test {fp32['test']:.4f} -> {new['test']:.4f} ({deltas['test']:+.4f})", file=sys.stderr)
    result["primary"] = models[0]
    result["primary_within_bound"] = result["models"][models[0]]["cv_within_bound"]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vectors", type=Path, help="npz written by benchmarks/embed.py --save-vectors")
    parser.add_argument("--models", nargs="+", default=None,
                        help="models to score (default: the primary model and ridge); baselines come along")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.vectors, tuple(args.models) if args.models else None), sort_keys=True))


if __name__ == "__main__":
    main()
