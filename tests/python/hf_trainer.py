"""The Hugging Face `transformers.Trainer` on CPU, for `diagnose watch` tests: a tiny BERT
masked-LM built from a config (randomly initialised: nothing is downloaded), evaluated
every epoch. It marks nothing; the Trainer logs `{'loss': ..., 'epoch': '1'}`.

Modes (--mode):
  clean        nothing kept
  train-graph  compute_loss keeps every step's logits, with their autograd graph, on the
               Trainer (self.kept_logits): 8 x 32 x 1024 floats (1 MiB) a step
  val-outputs  prediction_step keeps every evaluation batch's logits (self.val_outputs),
               never cleared: 8 batches of 1 MiB an epoch, well above the process
               series' tolerance
  worker-cache the training dataset keeps each item it loads (Tokens.seen) in 2
               persistent DataLoader workers
"""
import argparse

import torch
from transformers import BertConfig, BertForMaskedLM, Trainer, TrainingArguments


VOCAB = 1024  # logits of 32 tokens x 1024 floats: 128 KiB a sample


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n, cache=False):
        self.n = n
        self.cache = cache
        self.seen = []

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        ids = torch.randint(0, VOCAB, (32,), generator=g)
        if self.cache:
            self.seen.append(torch.ones(4096))  # 16 KiB an item, kept in the worker
        return {"input_ids": ids, "labels": ids.clone()}


class KeepingTrainer(Trainer):
    mode = "clean"

    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, **kwargs)
        if self.mode == "train-graph" and model.training:
            self.kept_logits.append(outputs.logits)
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        loss, logits, labels = super().prediction_step(model, inputs, False, ignore_keys)
        if self.mode == "val-outputs":
            self.val_outputs.append(logits)
        return loss, logits, labels


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="clean", choices=["clean", "train-graph", "val-outputs", "worker-cache"])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    workers = 2 if args.mode == "worker-cache" else 0
    targs = TrainingArguments(output_dir=args.out, num_train_epochs=args.epochs, per_device_train_batch_size=8, per_device_eval_batch_size=8,
                              eval_strategy="epoch", save_strategy="no", report_to=[], use_cpu=True, logging_strategy="epoch",
                              disable_tqdm=True, dataloader_num_workers=workers, dataloader_persistent_workers=workers > 0, seed=0)
    KeepingTrainer.mode = args.mode
    t = KeepingTrainer(model=BertForMaskedLM(cfg), args=targs, train_dataset=Tokens(128, args.mode == "worker-cache"), eval_dataset=Tokens(64))
    t.kept_logits = []
    t.val_outputs = []
    t.train()
    print("done", flush=True)


if __name__ == "__main__":
    main()
