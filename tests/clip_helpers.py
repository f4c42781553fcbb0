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
    try:  # sentence-transformers >= 6 moved its modules; older releases have them in .models
        from sentence_transformers.sentence_transformer.modules import CLIPModel as STClip
    except ImportError:
        from sentence_transformers.models import CLIPModel as STClip
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    hf = folder / "hf"
    hf.mkdir(parents=True)
    tokenizer = _char_tokenizer(hf)
    vocab = tokenizer.get_vocab()
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


def _char_tokenizer(folder: Path):
    """A character-level CLIP BPE tokenizer saved in ``folder`` (no vocabulary ships offline)."""
    from transformers import CLIPTokenizer

    chars = list(string.ascii_lowercase + string.digits + ".,!?'-")
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def make_tiny_siglip(folder: Path) -> Path:
    """A random SigLIP (1-layer towers, 32-d, text window 16) saved as a transformers folder, with a
    character-level tokenizer: SigLIP pads texts to the full window and pools its last token."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _char_tokenizer(folder)
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = SiglipConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 16, "pad_token_id": eos,
                     "eos_token_id": eos, "bos_token_id": eos},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8})
    torch.manual_seed(0)
    SiglipModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def make_tiny_open_clip(folder: Path) -> Path:
    """A random open_clip CLIP (1-layer towers, 16-d, context 16) saved as an open_clip ``local-dir`` folder:
    ``open_clip_config.json`` plus its weights. Needs open_clip (and so torchvision)."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    model_cfg = {"embed_dim": 16,
                 "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
                 "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    preprocess_cfg = {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
                      "interpolation": "bicubic", "resize_mode": "shortest"}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg,
                                                              "preprocess_cfg": preprocess_cfg}))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}", load_weights=False)
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return folder
