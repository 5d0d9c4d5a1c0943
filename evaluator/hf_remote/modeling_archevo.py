"""Hugging Face wrapper of an archevo export: transformers' loading, outputs and generation
around the very modules of ``model.py``.

``ArchevoForCausalLM`` holds the modules ``build_model()`` makes under the same names as
``LanguageModel`` (so ``model.safetensors`` loads into either) and runs ``LanguageModel``'s
own forward. The model has no key/value cache: generation feeds the last ``seq_len`` tokens
each step. It has no attention mask either: right padding is harmless to a causal model,
left padding is refused.
"""

import torch
import torch.nn.functional as F
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from .configuration_archevo import ArchevoConfig
from .model import LanguageModel, build_model, sinusoidal_positions


class ArchevoForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = ArchevoConfig
    _tied_weights_keys = {"lm_head.weight": "wte.weight"}  # applied only when config.tie_word_embeddings

    embed = LanguageModel.embed
    body = LanguageModel.body

    def __init__(self, config: ArchevoConfig):
        super().__init__(config)
        core = build_model()
        self.seq_len = core.seq_len
        self.wte, self.wpe, self.layers, self.final, self.lm_head = (
            core.wte,
            core.wpe,
            core.layers,
            core.final,
            core.lm_head,
        )
        self.register_buffer("position_table", core.position_table, persistent=False)
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        """build_model() initialises every parameter as archevo trained it; only the sinusoidal
        table, a buffer no checkpoint holds, is rebuilt after transformers' meta-device load."""
        if module is self and self.position_table is not None:
            d_model = self.position_table.shape[1]
            with torch.no_grad():
                self.position_table.copy_(sinusoidal_positions(self.seq_len, d_model))

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.wte

    def set_input_embeddings(self, value: torch.nn.Embedding) -> None:
        self.wte = value

    def get_output_embeddings(self) -> torch.nn.Linear:
        return self.lm_head

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> CausalLMOutput:
        """Logits for every position; with ``labels`` (the input ids, shifted here as in every
        transformers causal LM, -100 ignored) the mean next-token cross-entropy."""
        if attention_mask is not None and bool((attention_mask[:, 1:] > attention_mask[:, :-1]).any()):
            raise ValueError("left padding is not supported (the model has no attention mask): pad on the right")
        logits, _ = LanguageModel.forward(self, input_ids)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)

    def prepare_inputs_for_generation(self, input_ids: torch.Tensor, **kwargs) -> dict:
        """The last ``seq_len`` tokens, whole (no cache to continue from)."""
        return {"input_ids": input_ids[:, -self.seq_len :]}
