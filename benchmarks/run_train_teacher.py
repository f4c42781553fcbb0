"""A cross-encoder teacher for GPL-style adaptation, built offline on a set that is none of the four adaptation sets.

GPL (Wang et al. 2022) distils a cross-encoder trained on another dataset (MS MARCO) into the bi-encoder on the
target corpus's generated queries. No cross-encoder ships offline, so this trains one here the same way the SciFact
reranker is trained (`run_train_reranker.py`), on SQuAD v1.1 dev (Wikipedia questions, one judged paragraph each)
instead of SciFact: `--questions` questions drawn under `--seed` → `from_qrels` → `--negatives` hybrid-mined
negatives each (no false-negative margin: each question has one answering paragraph) → `train_reranker("minilm",
loss="bce")`. SciFact's, cranfield's, cacm's and nfcorpus's judgements are never used for training.

Checks recorded with it, taken before the teacher is used (none is a test split of the four sets):
- SQuAD questions held out of training: the teacher alone reranking MiniLM's top `--depth`, against MiniLM alone;
- SciFact's `train` queries (the split the supervised benchmark trains on; never its test queries): the same
  comparison out of domain, which decides whether the teacher is worth distilling at all (a teacher that ranks
  below the student it would teach can only pull it down).

    python benchmarks/run_train_teacher.py                  # ~25 min of training on 2 cores
    python benchmarks/run_train_teacher.py --model DIR      # the checks alone, on an already trained folder

Writes benchmarks/results/train_teacher.json; the model goes to benchmarks/work/train_teacher/reranker-squad.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from datasets_en import ENGLISH_SETS  # noqa: E402
from run_train_adapt import collection_for, paired_outcome  # noqa: E402

RESULTS = HERE / "results"
WORK = HERE / "work" / "train_teacher"
TEACHER_SET = "squad-v1.1-dev"


def rerank_check(collection, queries: dict[str, str], qrels: dict, teacher: str, depth: int) -> dict:  # type: ignore[no-untyped-def]
    """nDCG@10 of MiniLM's dense top ``depth`` as ranked by MiniLM and as reranked by the teacher alone."""
    from retrievekit.evaluation.metrics import evaluate
    from retrievekit.retrieval.pipeline import document_texts
    from retrievekit.retrieval.rerank import get_reranker

    reranker = get_reranker(teacher, blend=None, max_length=256)
    texts = document_texts(collection)
    qids = sorted(q for q in qrels if q in queries)
    dense = collection.retriever("dense").search([queries[q] for q in qids], depth)
    reranked = reranker.rerank([queries[q] for q in qids], dense, texts, k=depth)
    runs = {label: evaluate(result.to_run(qids), {q: qrels[q] for q in qids}, ("ndcg@10",), per_query=True)
            for label, result in (("dense", dense), ("teacher", reranked))}
    a = [runs["teacher"].per_query["ndcg@10"][q] for q in qids]
    b = [runs["dense"].per_query["ndcg@10"][q] for q in qids]
    return {"queries": len(qids), "depth": depth, "dense_ndcg@10": round(runs["dense"]["ndcg@10"], 4),
            "teacher_ndcg@10": round(runs["teacher"]["ndcg@10"], 4), **paired_outcome(a, b)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=4000, help="SQuAD questions to train on (default 4000)")
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=192, help="training truncation (SQuAD paragraphs are short)")
    parser.add_argument("--seed", type=int, default=0, help="draws the training questions")
    parser.add_argument("--train-seed", type=int, default=1)
    parser.add_argument("--depth", type=int, default=20, help="dense candidates the checks rerank (default 20)")
    parser.add_argument("--check-questions", type=int, default=200,
                        help="queries per check: held-out SQuAD questions, SciFact train queries (default 200)")
    parser.add_argument("--model", help="skip training: check this already trained folder")
    args = parser.parse_args()

    from retrievekit.evaluation import load_beir
    from retrievekit.training.builders import from_qrels
    from retrievekit.training.mining import mine_negatives
    from retrievekit.training.reranker_training import train_reranker

    folder, split, corpus = ENGLISH_SETS[TEACHER_SET]
    squad = load_beir(folder, split=split, corpus=corpus)
    collection = collection_for(TEACHER_SET)
    train_qids = sorted(random.Random(args.seed).sample(sorted(squad.qrels), args.questions))
    result: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_start": round(os.getloadavg()[0], 2), "python": platform.python_version()},
        "recipe": {k: v for k, v in vars(args).items() if k not in ("model", "depth", "check_questions")}
        | {"base": "minilm (all-MiniLM-L6-v2 weights, a new one-score head)", "set": TEACHER_SET, "loss": "bce",
           "miner": "hybrid"},
    }
    out = Path(args.model) if args.model else WORK / "reranker-squad"
    if not args.model:
        data = from_qrels(collection, squad.queries, {q: squad.qrels[q] for q in train_qids})
        mined = mine_negatives(data, collection, mode="hybrid", per_query=args.negatives, margin=None)
        examples = [e for e in mined if e.negatives]
        print(f"{len(examples)} examples, mining {mined.stats}", flush=True)
        started = time.perf_counter()
        train_reranker("minilm", examples, out, loss="bce", epochs=args.epochs, batch_size=args.batch_size,
                       learning_rate=args.learning_rate, max_length=args.max_length, seed=args.train_seed,
                       overwrite=True, progress=True)
        card = json.loads((out / "model_card.json").read_text())
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        result |= {"examples": len(examples), "mining_stats": mined.stats,
                   "train_seconds": round(time.perf_counter() - started, 1), "steps": card["global_step"],
                   "loss_curve": card.get("loss_curve")}

    held = sorted(set(squad.qrels) - set(train_qids))
    held = sorted(random.Random(args.seed + 1).sample(held, min(args.check_questions, len(held))))
    result["check_squad_held_out"] = rerank_check(collection, squad.queries, {q: squad.qrels[q] for q in held},
                                                  str(out), args.depth)
    print("squad held out:", result["check_squad_held_out"], flush=True)
    folder, _, corpus = ENGLISH_SETS["scifact"]
    scifact_train = load_beir(folder, split="train", corpus=corpus)
    checked = sorted(random.Random(args.seed).sample(sorted(scifact_train.qrels),
                                                     min(args.check_questions, len(scifact_train.qrels))))
    result["check_scifact_train"] = rerank_check(collection_for("scifact"), scifact_train.queries,
                                                 {q: scifact_train.qrels[q] for q in checked}, str(out), args.depth)
    print("scifact train:", result["check_scifact_train"], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_teacher.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
