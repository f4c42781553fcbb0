"""A tiny random CLIP saved as a sentence-transformers model folder (no CLIP weights ship on PyPI): for tests of
the image-text encoders, image indexes and image search."""

from __future__ import annotations

import json
import string
from pathlib import Path


def make_tiny_clip(folder: Path) -> Path:
    """A random CLIP (1-layer towers, 16-d projection, character-level BPE) saved as a sentence-transformers
    model folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import CLIPModel as STClip
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    hf = folder / "hf"
    hf.mkdir(parents=True)
    chars = list(string.ascii_lowercase + string.digits + ".,!?'-")
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    (hf / "vocab.json").write_text(json.dumps(vocab))
    (hf / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(hf / "vocab.json"), str(hf / "merges.txt"))
    eos = vocab["<|endoftext|>"]
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 32, "bos_token_id": vocab["<|startoftext|>"],
                     "eos_token_id": eos, "pad_token_id": eos},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(hf)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    processor.save_pretrained(hf)
    SentenceTransformer(modules=[STClip(str(hf))]).save(str(folder / "st"))
    return folder / "st"
