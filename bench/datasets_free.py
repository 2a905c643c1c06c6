"""A list as a torch Dataset, so the reference Trainer needs no `datasets` install."""

import torch


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]
