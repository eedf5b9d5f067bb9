"""The Mafin model: a black-box embedding augmented with a small trainable sentence-transformers model.

The embedding of a text is the concatenation ``[b(x) ; λ · normalize(s(x))]`` of the black box's
unit vector ``b(x)`` and the trainable model's normalised embedding ``s(x)``. Cosine similarity of
two such vectors is ``(b·b' + λ² s·s') / (1 + λ²)``: the black box's judgement, corrected by the
small model with weight λ². Only ``s`` is trained; the black box's vectors are constants.

This is the form of the authors' public code (VectifyAI/FAE: ``[e_blackbox ; normalize(e_small)/2]``,
so λ = 1/2); the paper's body could not be read, so the form is documented here as ours, and λ is
a setting to choose on train/dev data.

The black box's vectors enter through :meth:`MafinModel.preprocess`, which sentence-transformers
calls both in ``encode`` and in the trainer's data collator, so the combined model trains with
``SentenceTransformerTrainer`` and any loss, unchanged.

References:
    Zhang, Lan, Hayes, Barber, "Mafin: Enhancing Black-Box Embeddings with Model Augmented
    Fine-Tuning", arXiv 2402.12177.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer, SentenceTransformerModelCardData
from sentence_transformers.base.modules.module import Module

from .blackbox import BlackBox, MissingVectorError, VectorCache

logger = logging.getLogger(__name__)

# The feature key that carries the black box's vectors from preprocess to MafinCombine.
BLACKBOX_FEATURE = "blackbox_embedding"
# sentence-transformers' card template says to install it alone; MafinModel comes with st-hardneg.
ST_INSTALL = "First install the Sentence Transformers library:\n\n```bash\npip install -U sentence-transformers\n```"
MAFIN_INSTALL = ("First install st-hardneg, which brings Sentence Transformers and `MafinModel`:\n\n"
                 "```bash\npip install -U st-hardneg\n```")


class MafinCombine(Module):
    """Last module of a Mafin model: ``sentence_embedding = [black box ; weight · normalize(sentence_embedding)]``.

    Args:
        weight (float): λ, the weight of the trainable part.
        black_box_name (str): The black box the model was built with (recorded in its config and card).
    """

    config_keys: list[str] = ["weight", "black_box_name", "black_box_dim", "small_dim"]  # noqa: RUF012 (ST's API)

    def __init__(self, weight: float = 0.5, black_box_name: str = "", black_box_dim: int | None = None,
                 small_dim: int | None = None) -> None:
        super().__init__()
        if not weight > 0:
            raise ValueError(f"weight must be positive, got {weight}")
        self.weight, self.black_box_name = float(weight), black_box_name
        self.black_box_dim, self.small_dim = black_box_dim, small_dim

    def get_embedding_dimension(self) -> int | None:
        """The combined size: the black box's plus the small model's."""
        if self.black_box_dim is None or self.small_dim is None:
            return None
        return self.black_box_dim + self.small_dim

    def forward(self, features: dict[str, Any]) -> dict[str, Any]:
        box = features.get(BLACKBOX_FEATURE)
        if box is None:
            raise RuntimeError(f"this Mafin model needs the vectors of its black box ({self.black_box_name!r}): load it "
                               "with st_hardneg.mafin.MafinModel(path, black_box=...), not SentenceTransformer(path)")
        if self.black_box_dim is not None and box.shape[-1] != self.black_box_dim:
            raise ValueError(f"black box {self.black_box_name!r}: got {box.shape[-1]}-d vectors, the model was built "
                             f"with {self.black_box_dim}-d ones")
        small = F.normalize(features["sentence_embedding"], p=2, dim=-1)
        features["sentence_embedding"] = torch.cat([box.to(device=small.device, dtype=small.dtype),
                                                    self.weight * small], dim=-1)
        return features

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)

    @classmethod
    def load(cls, model_name_or_path: str = "", subfolder: str = "", token: bool | str | None = None,
             cache_folder: str | None = None, revision: str | None = None, local_files_only: bool = False,
             **kwargs) -> MafinCombine:
        config = cls.load_config(model_name_or_path=model_name_or_path, subfolder=subfolder, token=token,
                                 cache_folder=cache_folder, revision=revision, local_files_only=local_files_only)
        return cls(**{k: v for k, v in config.items() if k in cls.config_keys})


class MafinModelCardData(SentenceTransformerModelCardData):
    """sentence-transformers' model card data, with a usage snippet that loads the model with its black box.

    The generated card would otherwise tell users to load ``SentenceTransformer(repo_id)``, which
    cannot encode without the black box. When the black box has no vectors for the example texts
    (a precomputed store), the snippet is written without similarity scores instead of warning.
    """

    def run_usage_snippet(self) -> None:
        try:
            super().run_usage_snippet()
        except MissingVectorError as exc:
            logger.info("model card: usage snippet written without scores (%s)", exc)
            self.similarities = None

    def generate_usage_snippet(self) -> str:
        examples = self.usage_examples_display or self.usage_examples
        if not examples or any(not isinstance(text, str) for text in examples):  # a Mafin model embeds texts only
            examples = ["The weather is lovely today."]
        combine = self.model[-1]
        n = len(examples)
        # The black box's size is learnt from its first vectors: unknown if the model never encoded.
        dim = combine.get_embedding_dimension() or f"{combine.black_box_dim or 'black box'} + {combine.small_dim}"
        lines = [
            "from st_hardneg.mafin import CallableBlackBox, MafinModel",
            "",
            "# The black box's vectors come from you: an API client, a store of precomputed vectors",
            "# (PrecomputedBlackBox) or a local copy of the model (ModelBlackBox).",
            f"black_box = CallableBlackBox(my_client.embed, name={combine.black_box_name!r})",
            f'model = MafinModel("{self.model_id or "st_hardneg_mafin_model_id"}", black_box=black_box)',
            "sentences = [",
            *(f"    {text!r}," for text in examples),
            "]",
            "embeddings = model.encode(sentences)",
            "print(embeddings.shape)",
            f"# [{n}, {dim}]",
            "similarities = model.similarity(embeddings, embeddings)",
        ]
        lines += ["print(similarities)", self.similarities] if self.similarities else [
            "print(similarities.shape)", f"# [{n}, {n}]"]
        return "```python\n" + "\n".join(lines) + "\n```"


class MafinModel(SentenceTransformer):
    """A ``SentenceTransformer`` whose embedding is a black box's vector plus a trainable model's, weighted.

    Build one with :meth:`from_models`; save it with ``save`` / ``push_to_hub`` like any model; load
    it with ``MafinModel(path, black_box=...)`` (the black box is not saved: an API client, a vector
    store or a frozen model the user supplies again).

    Args:
        model_name_or_path (str | None): A saved Mafin model (its last module is :class:`MafinCombine`).
        black_box (BlackBox): Where the black box's vectors come from; wrapped in a
            :class:`~st_hardneg.mafin.VectorCache` (in memory) unless it is one, so each text is
            fetched once.
        **kwargs: Passed to ``SentenceTransformer`` (``modules``, ``device``, ...).

    Example::

        from st_hardneg import load_model
        from st_hardneg.mafin import MafinModel, PrecomputedBlackBox

        box = PrecomputedBlackBox("mpnet_vectors.parquet", name="all-mpnet-base-v2")
        model = MafinModel.from_models(load_model(None), box, weight=0.5)
        model.encode(["what is hard-negative mining?"]).shape   # (1, 768 + 384)
    """

    # modules.json names our last module; resolve it to the class imported here instead of asking for
    # trust_remote_code (sentence-transformers' per-class hook; everything else loads as usual, flag included).
    _module_classes = {f"{__name__}.MafinCombine": MafinCombine}  # noqa: RUF012
    model_card_data_class = MafinModelCardData

    def __init__(self, model_name_or_path: str | None = None, *, black_box: BlackBox | None = None,
                 **kwargs: Any) -> None:
        super().__init__(model_name_or_path, **kwargs)
        if not isinstance(self[-1], MafinCombine):
            raise TypeError(f"{model_name_or_path or 'modules'}: not a Mafin model (its last module is "
                             f"{type(self[-1]).__name__}, not MafinCombine); build one with MafinModel.from_models")
        if black_box is None:
            raise ValueError(f"MafinModel needs black_box=... (this model was built with {self[-1].black_box_name!r})")
        if black_box.name != self[-1].black_box_name:
            logger.warning("black box %r given, but the model was built with %r", black_box.name,
                           self[-1].black_box_name)
        self.black_box = black_box if isinstance(black_box, VectorCache) else VectorCache(black_box)

    @classmethod
    def from_models(cls, small: SentenceTransformer, black_box: BlackBox, weight: float = 0.5,
                    **kwargs: Any) -> MafinModel:
        """A Mafin model from the trainable ``small`` model (its modules are reused, not copied) and a black box."""
        # The black box's size is learnt from its first vectors (a store may hold no probe text) and saved.
        combine = MafinCombine(weight, black_box.name, small_dim=small.get_embedding_dimension())
        settings = {"device": str(small.device), "prompts": small.prompts,
                    "default_prompt_name": small.default_prompt_name, "similarity_fn_name": small.similarity_fn_name}
        return cls(modules=[*small, combine], black_box=black_box, **{**settings, **kwargs})

    @property
    def weight(self) -> float:
        return self[-1].weight

    @property
    def embedding_cache_key(self) -> dict:
        """What st-hardneg's embedding cache adds to the weights' fingerprint: the black box and λ."""
        return {"black_box": self.black_box.name, "weight": self.weight}

    def _create_model_card(self, path: str, model_name: str | None = None,
                           train_datasets: list[str] | None = "deprecated") -> None:
        # sentence-transformers writes the card (save and push_to_hub); only its install line is wrong for us.
        from ..backends import _write_atomic

        super()._create_model_card(path, model_name, train_datasets)
        card = Path(path) / "README.md"
        text = card.read_text(encoding="utf-8") if card.is_file() else ""
        if ST_INSTALL in text:  # a card reused from the Hub has our line already
            _write_atomic(card, text.replace(ST_INSTALL, MAFIN_INSTALL))

    def preprocess(self, inputs, prompt: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """The trainable model's features, plus the black box's vectors of the raw inputs (without the prompt)."""
        features = super().preprocess(inputs, prompt=prompt, **kwargs)
        if not inputs:
            return features
        odd = next((x for x in inputs if not isinstance(x, str)), None)
        if odd is not None:
            raise TypeError(f"a Mafin model embeds texts; got a {type(odd).__name__} input")
        vectors = self.black_box.embed(list(inputs))
        combine = self[-1]
        if combine.black_box_dim is None:  # learnt from the first vectors, then saved with the model
            combine.black_box_dim = int(vectors.shape[1])
        features[BLACKBOX_FEATURE] = torch.from_numpy(vectors)
        return features
