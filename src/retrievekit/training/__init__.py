"""Adapting retrievers to a user's data: training data builders (qrels, self-supervised pairs, mined hard
negatives) as plain JSONL, and the trainers that consume it."""

from retrievekit.training.builders import from_qrels, inverse_cloze, random_crops, title_body
from retrievekit.training.data import TrainingDataError, TrainingExample, TrainingSet
from retrievekit.training.mining import mine_negatives

__all__ = ["TrainingDataError", "TrainingExample", "TrainingSet", "from_qrels", "inverse_cloze", "mine_negatives",
           "random_crops", "title_body"]
