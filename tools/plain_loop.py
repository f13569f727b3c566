"""The plain PyTorch baseline every modelling decision is judged against, side by side on the same machine.

    OMP_NUM_THREADS=1 python tools/plain_loop.py --train DIR --images DIR --out DIR --minutes 30

smp Unet(resnet34) from scratch, every image squished to 128 px, flips and quarter turns, BCE + soft Dice, AdamW with
one cycle over a step count fixed up front (from 20 timed steps), bf16 autocast + channels-last on CPUs that have bf16,
threshold 0.5, no post-processing. Writes `<ID>_segmentation.png` (0/255, original size) for every image of `--images`."""
import argparse, math, time
from pathlib import Path
import numpy as np, torch, torch.nn.functional as F, segmentation_models_pytorch as smp
from PIL import Image

def load(f, size, mode): return np.asarray(Image.open(f).convert(mode).resize((size, size), Image.BILINEAR if mode == 'RGB' else Image.NEAREST))

def read_pairs(data:Path, size:int):
    imgs = sorted((data/'images').glob('*.jpg'))
    x = np.stack([load(f, size, 'RGB') for f in imgs]).transpose(0, 3, 1, 2)
    y = np.stack([load(data/'masks'/f'{f.stem}_segmentation.png', size, 'L') > 128 for f in imgs])[:, None]
    return torch.tensor(x, dtype=torch.float32)/255, torch.tensor(y, dtype=torch.float32)

def augment(x, y):
    if torch.rand(1) < .5: x, y = x.flip(3), y.flip(3)
    if torch.rand(1) < .5: x, y = x.flip(2), y.flip(2)
    k = int(torch.randint(4, (1,)))
    return x.rot90(k, (2, 3)), y.rot90(k, (2, 3))

def loss_fn(logits, y):
    p = logits.sigmoid()
    dice = 1 - (2*(p*y).sum((1, 2, 3)) + 1)/(p.sum((1, 2, 3)) + y.sum((1, 2, 3)) + 1)
    return F.binary_cross_entropy_with_logits(logits, y) + dice.mean()

def step(model, opt, sched, x, y, amp):
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp): loss = loss_fn(model(x).float(), y)
    opt.zero_grad(); loss.backward(); opt.step(); sched.step()

def main(a):
    torch.manual_seed(a.seed)
    amp = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    x, y = read_pairs(Path(a.train), a.size)
    mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
    model = smp.Unet('resnet34', encoder_weights=None, classes=1).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-2)
    batch = lambda: (lambda i: augment((x[i]-mean)/std, y[i]))(torch.randint(len(x), (a.bs,)))
    probe = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.)          # 20 timed steps at lr 0 fix the step count
    t0 = time.time()
    for _ in range(20): step(model, opt, probe, *batch(), amp)
    n_steps = int((a.minutes*60 - (time.time() - t0) - 60)/((time.time() - t0)/20)*0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=n_steps, pct_start=.25)
    model.train()
    for _ in range(n_steps): step(model, opt, sched, *batch(), amp)
    print(f'{n_steps} steps ({n_steps*a.bs/len(x):.1f} epochs) in {(time.time()-t0)/60:.1f} min')
    model.eval(); out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    for f in sorted(Path(a.images).glob('*.jpg')):
        img = Image.open(f).convert('RGB')
        xi = (torch.tensor(load(f, a.size, 'RGB').transpose(2, 0, 1)[None], dtype=torch.float32)/255 - mean)/std
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp): p = model(xi).float().sigmoid()
        p = F.interpolate(p, size=img.size[::-1], mode='bilinear', align_corners=False)[0, 0]
        Image.fromarray(((p > .5).numpy()*255).astype(np.uint8)).save(out/f'{f.stem}_segmentation.png')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for k, v in dict(train=None, images=None, out=None, minutes=30., size=128, bs=16, lr=3e-3, seed=0).items():
        p.add_argument(f'--{k}', type=type(v) if v is not None else str, default=v, required=v is None)
    main(p.parse_args())
