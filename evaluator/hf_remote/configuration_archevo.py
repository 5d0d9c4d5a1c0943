"""Hugging Face configuration of an archevo export.

The model's shape is fixed by ``build_model()`` in ``model.py`` (written with this file); the
config carries what transformers reads: the vocabulary, the context, the tying of the
embeddings and the special tokens. archevo's own record (the program, its spec, the search
metadata) stays under the ``archevo`` key.
"""

from transformers import PretrainedConfig


class ArchevoConfig(PretrainedConfig):
    model_type = "archevo"

    def __init__(
        self,
        vocab_size: int = 1024,
        hidden_size: int = 128,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        max_position_embeddings: int = 128,
        tie_word_embeddings: bool = True,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.max_position_embeddings = max_position_embeddings
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)
