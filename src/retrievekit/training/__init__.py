"""Adapting retrievers to a user's data: training data builders (qrels, self-supervised pairs, mined hard
negatives) as plain JSONL, and the trainers that consume it."""

from retrievekit.training._deps import TrainingError, read_card
from retrievekit.training.builders import docstring_function, from_qrels, inverse_cloze, random_crops, title_body
from retrievekit.training.data import TrainingDataError, TrainingExample, TrainingSet
from retrievekit.training.encoder_training import train_encoder
from retrievekit.training.mining import mine_negatives
from retrievekit.training.reranker_training import train_reranker
from retrievekit.training.synthetic import RoundTrip, generate_queries
from retrievekit.training.teacher import reranker_judge, score_with_teacher

__all__ = ["RoundTrip", "TrainingDataError", "TrainingError", "TrainingExample", "TrainingSet", "docstring_function",
           "from_qrels", "generate_queries", "inverse_cloze", "mine_negatives", "random_crops", "read_card",
           "reranker_judge", "score_with_teacher", "title_body", "train_encoder", "train_reranker"]
