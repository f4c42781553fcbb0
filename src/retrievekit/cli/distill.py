"""`retrievekit distill MODEL OUTPUT`: a fast static (model2vec) model from a sentence-transformers model."""

from __future__ import annotations

import argparse

from retrievekit.encoders.distill import distill


def add_distill(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("distill", help="distil a sentence-transformers model into a fast static (model2vec) model",
                       description="Distil MODEL (hub name, local folder or alias such as 'minilm') into a model2vec "
                       "static model saved in OUTPUT; use it with the encoder name 'model2vec:OUTPUT'.")
    p.add_argument("model", metavar="MODEL", help="sentence-transformers model to distil")
    p.add_argument("output", metavar="OUTPUT", help="folder to save the static model in")
    p.add_argument("--pca-dims", type=int, default=256, metavar="N",
                   help="reduce the vectors to N dimensions with PCA (default 256; 0 keeps the model's dimension)")
    p.set_defaults(func=_run_distill)


def _run_distill(args: argparse.Namespace) -> int:
    path = distill(args.model, args.output, pca_dims=args.pca_dims or None)
    print(f"saved the static model to {path} (encoder name: model2vec:{path})")
    return 0
