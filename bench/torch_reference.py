"""The same window network in PyTorch: the reference bench/speed.py times nerwin against.

Same windows and features (built by nerwin's own data code), same sizes,
same initial weights (copied from a fresh nerwin model), same loss
(lambda BCE + CE), same dropout, Adam for the dense layers and SparseAdam
for the embeddings (``nn.Embedding(sparse=True)``), same batch size and
thread count. Needs the ``bench`` extra (torch).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nerwin.data.features import TokenEncoder
from nerwin.decode import decode_batch
from nerwin.model import WindowTagger, feature_dims
from nerwin.train import TrainingData


class TorchWindowTagger(nn.Module):
    """Embeddings -> concat -> Linear -> tanh -> {binary Linear, tag Linear}, as in nerwin."""

    def __init__(self, reference: WindowTagger):
        super().__init__()
        config = reference.config
        self.names = list(feature_dims(config))
        p = {name: torch.from_numpy(array.copy()) for name, array in reference.params.items()}
        self.embeddings = nn.ModuleDict(
            {
                name: nn.Embedding.from_pretrained(p[f"{name}.table"], freeze=False, sparse=True)
                for name in self.names
            }
        )
        self.hidden = nn.Linear(*reversed(p["hidden.W"].shape))
        self.binary = nn.Linear(p["binary.u"].shape[0], 1)
        self.tag = nn.Linear(*reversed(p["tag.V"].shape))
        with torch.no_grad():
            self.hidden.weight.copy_(p["hidden.W"])
            self.hidden.bias.copy_(p["hidden.b"])
            self.binary.weight.copy_(p["binary.u"][None, :])
            self.binary.bias.copy_(p["binary.c"])
            self.tag.weight.copy_(p["tag.V"])
            self.tag.bias.copy_(p["tag.e"])
        self.dropout = nn.Dropout(config.model.dropout)
        self.activation = {
            "tanh": torch.tanh,
            "relu": torch.relu,
            "hardtanh": nn.functional.hardtanh,
        }[config.model.activation]

    def forward(self, ids: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """ids[name]: (B, K) -> (binary scores (B,), tag scores (B, C))."""
        x = torch.cat([self.embeddings[name](ids[name]) for name in self.names], dim=2)
        x = self.dropout(x.reshape(x.shape[0], -1))
        h = self.dropout(self.activation(self.hidden(x)))
        return self.binary(h).squeeze(1), self.tag(h)


class TorchTagger:
    """Prediction with a ``TorchWindowTagger``: probabilities and decoded tags."""

    def __init__(self, model: TorchWindowTagger, labels: list[str]):
        self.model = model
        self.labels = labels

    @torch.no_grad()
    def probabilities(self, ids: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(p_ent (B,), p_tag (B, C)) as numpy, dropout off."""
        self.model.eval()
        s, o = self.model({name: torch.from_numpy(a) for name, a in ids.items()})
        return torch.sigmoid(s).numpy(), torch.softmax(o, dim=1).numpy()

    def tag(self, token_lists, encoder: TokenEncoder, window: int, method: str) -> list[list[str]]:
        """Tokens to tags for a batch of sentences, windows and decoding done by nerwin's code."""
        windows = encoder.windows(token_lists, window)
        _, p_tag = self.probabilities({name: windows.ids[name] for name in self.model.names})
        return decode_batch(p_tag, windows.sentence_starts, self.labels, method)


class TorchTrainer(TorchTagger):
    """Adam for dense parameters, SparseAdam for embeddings; nerwin's batches and word dropout."""

    def __init__(self, reference: WindowTagger, data: TrainingData, seed: int):
        super().__init__(TorchWindowTagger(reference), reference.labels)
        self.config = reference.config
        self.data = data
        self.o_index = reference.labels.index("O")
        lr = self.config.train.lr
        sparse = [e.weight for e in self.model.embeddings.values()]
        dense = [
            p for name, p in self.model.named_parameters() if not name.startswith("embeddings")
        ]
        self.optimizers = [torch.optim.Adam(dense, lr=lr), torch.optim.SparseAdam(sparse, lr=lr)]
        self.rng = np.random.default_rng(seed)
        self.singleton = torch.from_numpy(data.singleton)
        torch.manual_seed(seed)

    def batch_ids(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        return {
            name: torch.from_numpy(self.data.windows.ids[name][rows]) for name in self.model.names
        }

    def train_epoch(self) -> float:
        """One shuffled pass; the mean batch loss."""
        self.model.train()
        order = self.rng.permutation(len(self.data.windows))
        batch, rate = self.config.train.batch_size, self.config.features.unk_replace
        weight, total, batches = self.config.model.binary_weight, 0.0, 0
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            ids = self.batch_ids(rows)
            words = ids["word"].long()
            replace = self.singleton[words] & (torch.rand(words.shape) < rate)
            ids["word"] = torch.where(replace, torch.zeros_like(words), words)
            y_tag = torch.from_numpy(self.data.tags[rows])
            s, o = self.model(ids)
            loss = weight * nn.functional.binary_cross_entropy_with_logits(
                s, (y_tag != self.o_index).float()
            ) + nn.functional.cross_entropy(o, y_tag)
            for optimizer in self.optimizers:
                optimizer.zero_grad()
            loss.backward()
            for optimizer in self.optimizers:
                optimizer.step()
            total += float(loss)
            batches += 1
        return total / batches
