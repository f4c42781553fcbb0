"""Evaluation: trec_eval-exact metrics, TREC/BEIR file formats, significance tests, BEIR datasets."""

from retrievekit.evaluation.datasets import BeirDataset, DatasetError, load_beir
from retrievekit.evaluation.metrics import EvalResult, Qrels, Run, UnknownMetricError, evaluate
from retrievekit.evaluation.retrievers import evaluate_retriever
from retrievekit.evaluation.significance import Comparison, TestResult, compare, holm, paired_t_test, permutation_test
from retrievekit.evaluation.trec import read_qrels, read_run, write_qrels, write_run

__all__ = [
    "BeirDataset", "Comparison", "DatasetError", "EvalResult", "Qrels", "Run", "TestResult",
    "UnknownMetricError", "compare", "evaluate", "evaluate_retriever", "holm", "load_beir", "paired_t_test",
    "permutation_test", "read_qrels", "read_run", "write_qrels", "write_run",
]
