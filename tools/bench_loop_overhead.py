"""How much does fastai's training loop (with lesion_fastai's callbacks) add to the bare model's forward+backward+step?
Both loops train the same model architecture on the same in-memory batches (bf16 autocast + channels-last on a CPU with
native bf16, as in `train_segmenter`); data loading is excluded from both. Prints seconds per batch and the overhead.
Usage: python tools/bench_loop_overhead.py [--arch smp-unet34] [--size 128] [--bs 16] [--batches 12] [--repeats 3]"""
import argparse, statistics, time
import torch
from fastai.callback.core import Callback
from fastai.learner import Learner
from fastai.optimizer import Adam
from lesion_fastai.io import find_isic_dev, find_pairs
from lesion_fastai.data import cache_pairs, kfold_splits, seg_dataloaders
from lesion_fastai.demo import demo_set
from lesion_fastai.seg.recipe import make_learner
from lesion_fastai.learner.precision import CPUMixedPrecision, cpu_has_bf16

class _Batches:
    "A fixed list of batches that fastai's loop can iterate"
    def __init__(self, batches): self.batches = batches
    def __iter__(self): return iter(self.batches)
    def __len__(self): return len(self.batches)

class _DLs:
    def __init__(self, train, valid): self.train, self.valid, self.device = _Batches(train), _Batches(valid), torch.device('cpu')
    def __getitem__(self, i): return (self.train, self.valid)[i]

class _TimeTrain(Callback):
    "Wall time of each training phase"
    order = 100
    def before_train(self): self.t0 = time.perf_counter()
    def after_train(self): self.times.append(time.perf_counter() - self.t0)

def bare_loop(model, batches, loss_func, lr, fastai_opt=True):
    "Forward + backward + step on `batches`, nothing else; returns seconds"
    opt = Adam(list(model.parameters()), lr=lr, wd=1e-2) if fastai_opt else torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    on = cpu_has_bf16()
    model.train(); t0 = time.perf_counter()
    for xb, yb in batches:
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=on):
            out = model(xb.contiguous(memory_format=torch.channels_last))
        loss = loss_func(out.float(), yb)
        loss.backward(); opt.step(); opt.zero_grad()
    return time.perf_counter() - t0

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--arch', default='smp-unet34'); p.add_argument('--size', type=int, default=128)
    p.add_argument('--bs', type=int, default=16); p.add_argument('--batches', type=int, default=12)
    p.add_argument('--repeats', type=int, default=3)
    a = p.parse_args()
    torch.manual_seed(0)
    src = find_isic_dev() or demo_set(n=48)
    pairs = cache_pairs(find_pairs(src).iloc[:a.bs*a.batches + a.bs])
    pairs['fold'] = [1]*(a.bs*a.batches) + [0]*a.bs
    dls = seg_dataloaders(pairs, size=a.size, bs=a.bs)
    batches = [tuple(t.clone() for t in b) for b in dls.train][:a.batches]
    valid = [tuple(t.clone() for t in dls.valid.one_batch())]
    learn = make_learner(dls, a.arch, pretrained=False)
    model = learn.model.to(memory_format=torch.channels_last)
    fl = Learner(_DLs(batches, valid), model, loss_func=learn.loss_func, opt_func=Adam, metrics=learn.metrics,
                 cbs=[CPUMixedPrecision(), timer := _TimeTrain()])
    timer.times = []
    from fastai.callback.progress import ProgressCallback
    fl.remove_cbs([c for c in fl.cbs if isinstance(c, ProgressCallback)]); fl.logger = lambda *x: None
    bare, torch_opt = [], []
    for r in range(a.repeats + 1):           # the first round warms up all three
        bare.append(bare_loop(model, batches, learn.loss_func, 1e-4))
        torch_opt.append(bare_loop(model, batches, learn.loss_func, 1e-4, fastai_opt=False))
        fl.fit(1, 1e-4)
    b, f, t = statistics.median(bare[1:]), statistics.median(timer.times[1:]), statistics.median(torch_opt[1:])
    print(f"{a.arch} {a.size}px bs {a.bs}, {a.batches} batches x {a.repeats} repeats, bf16={cpu_has_bf16()}")
    print(f"bare forward+backward+step, fastai's Adam: {b/a.batches:.3f} s/batch")
    print(f"bare forward+backward+step, torch AdamW:  {t/a.batches:.3f} s/batch")
    print(f"fastai fit (training phase): {f/a.batches:.3f} s/batch")
    print(f"overhead of the fastai loop over the bare loop with the same optimizer: {100*(f/b - 1):+.1f} %")
