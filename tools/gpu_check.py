"""The GPU check, one short script: what a user's GPU gives with the library's own code paths.

    python tools/gpu_check.py                 # on a GPU machine (about 3–5 minutes): prints and writes gpu_check.json
    python tools/gpu_check.py --tiny --cpu    # the same steps, tiny, on a CPU (about a minute): checks the script runs

It measures, on the synthetic demo set (no data or internet needed; ImageNet weights are not needed either):
  1. training ms per image at 256 px (smp-unet34, fastai's loop, `Learner.time_per_image`), in fp32 and in the precision
     `precision_policy` chooses (bf16 or fp16 autocast through fastai's `MixedPrecision`);
  2. the largest batch size (powers of two) whose training step fits in GPU memory at 256 px, in that precision;
  3. ensemble + 8-way TTA prediction ms per image at the images' original size (a 2-fold ensemble, 1 epoch a member,
     `predict_folder` on the images, after one warm-up image).
"""
import argparse, json, os, sys, tempfile, time
from pathlib import Path

os.environ.setdefault('LESION_FASTAI_OFFLINE', '1')          # no download: the timings do not depend on the weights
import torch
from lesion_fastai.demo import make_demo_set
from lesion_fastai.io import find_pairs
from lesion_fastai.data import cache_pairs, kfold_splits, seg_dataloaders
from lesion_fastai.seg.recipe import make_learner
from lesion_fastai.learner.precision import precision_policy
from lesion_fastai.seg.ensemble import train_ensemble
from lesion_fastai.seg.predict import load_model, predict_folder


def train_ms(pairs, size, bs, precision, n_batches):
    "Training and validation ms per image through fastai's loop in `precision`"
    learn = make_learner(seg_dataloaders(pairs, size=size, bs=bs), 'smp-unet34', pretrained=False)
    learn.use_precision(precision)
    tr, va = learn.time_per_image(n_batches)
    return round(tr*1000, 2), round(va*1000, 2)


def max_batch(size, precision, device, start=8, limit=1024):
    "Largest power-of-two batch whose forward + backward fits, with the autocast `precision` implies"
    model = make_learner(seg_dataloaders(PAIRS, size=size, bs=2), 'smp-unet34', pretrained=False).model.to(device)
    opt, best, bs = torch.optim.AdamW(model.parameters()), None, start
    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(precision)
    while bs <= limit:
        try:
            x = torch.randn(bs, 3, size, size, device=device)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = model(x).float().mean()
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
            best, bs = bs, bs*2
        except torch.OutOfMemoryError: break
        finally:
            x = loss = None
            if device.type == 'cuda': torch.cuda.empty_cache()
    return best


def predict_ms(root, data, size, epochs, bs):
    "Ensemble + TTA ms per image at original size"
    ens = root/'ens'
    train_ensemble(data, ens, folds=2, sizes=[size], epochs=epochs, bs=bs, lr=2e-3, pretrained=False, progress=False, log=lambda *a: None)
    model = load_model(ens, tta=True)
    imgs = data/'images'
    warm = root/'warm'; warm.mkdir()
    first = sorted(imgs.iterdir())[0]; (warm/first.name).symlink_to(first)
    predict_folder(model, warm, root/'pred_warm', overlays=False, progress=False)
    if torch.cuda.is_available(): torch.cuda.synchronize()
    t0 = time.perf_counter()
    rep = predict_folder(model, imgs, root/'pred', overlays=False, progress=False)
    if torch.cuda.is_available(): torch.cuda.synchronize()
    return round((time.perf_counter() - t0)*1000/len(rep), 1), len(rep)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--tiny', action='store_true', help='64 px, few images and batches: checks the script runs (CPU)')
    ap.add_argument('--cpu', action='store_true', help='run on the CPU even where CUDA is available')
    ap.add_argument('--out', default='gpu_check.json')
    a = ap.parse_args()
    if a.cpu: os.environ['CUDA_VISIBLE_DEVICES'] = ''
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    size, n, bs, n_batches, epochs = (64, 12, 4, 2, 1) if a.tiny else (256, 64, 16, 6, 1)
    root = Path(tempfile.mkdtemp(prefix='gpu_check-'))
    make_demo_set(root/'data', n=n)
    PAIRS = cache_pairs(find_pairs(root/'data'), size=max(size, 384) if not a.tiny else 96, dest=root/'cache')
    PAIRS['fold'] = kfold_splits(PAIRS.image_id, k=3)
    auto = precision_policy(device)
    res = {'device': torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu', 'torch': torch.__version__,
           'size': size, 'bs': bs, 'precision_auto': auto}
    res['train_ms_per_image_fp32'], res['valid_ms_per_image_fp32'] = train_ms(PAIRS, size, bs, 'fp32', n_batches)
    res[f'train_ms_per_image_{auto}'], res[f'valid_ms_per_image_{auto}'] = train_ms(PAIRS, size, bs, auto, n_batches)
    res[f'max_batch_{auto}'] = max_batch(size, auto, device, start=2 if a.tiny else 8, limit=8 if a.tiny else 1024)
    res['ensemble_tta_ms_per_image'], res['predicted_images'] = predict_ms(root, root/'data', size, epochs, bs)
    res['original_size'] = '256x192 (demo images)'
    print(json.dumps(res, indent=1))
    Path(a.out).write_text(json.dumps(res, indent=1))
