"""Where the time of `predict` goes for one model folder: imports, model load, and per image the read, the network
passes, the rest of the members' maps (fastai's `get_preds`, or the portable input and views), the image's result
(resize, post-processing, QC) and its outputs.

    taskset -c 1 python tools/bench_predict_parts.py MODEL IMAGES [auto|torch|openvino]

Each part is timed inside one process, the images in batches of 8 as `predict` takes them; the overlay is the default
outline. Run it pinned to a core with nothing else on it, and twice: the first run of a model converts its network, and
from the second on OpenVINO the folder loads as a `PortableModel` (no torch: `imports` is then what it imports)."""
import sys, tempfile, time
from pathlib import Path

t0 = time.perf_counter()
from lesion_fastai.seg.predict import load_model, write_outputs  # what `lesion_fastai predict` imports…
if len(sys.argv) > 3 and sys.argv[3] == 'torch': import lesion_fastai.distributed   # …and on torch this too
from lesion_fastai.io import list_images, load_image
from lesion_fastai.portable import PortableModel
from fastcore.basics import chunked


class Timer:
    "Seconds spent per named part"
    def __init__(self): self.s = {}
    def __call__(self, name:str, f, *args):
        t = time.perf_counter()
        r = f(*args)
        self.s[name] = self.s.get(name, 0.) + time.perf_counter() - t
        return r


def timed_network(model, timer:Timer):
    "Time every call of the first member's network under 'network' (a `PortableModel`'s runner, or the torch module)"
    run, m = model.members[0]
    if isinstance(model, PortableModel): model.members[0] = (lambda x: timer('network', run, x), m)
    else: run.model.forward = lambda x, forward=run.model.forward: timer('network', forward, x)


def predict_parts(model, files:dict, work:Path, timer:Timer):
    "Predict `files` batch by batch as `predict` does, each part timed"
    for batch in chunked(sorted(files), 8):
        imgs = timer('read', lambda: [load_image(files[i]) for i in batch])
        maps = timer('maps', model.member_maps, imgs, None, 8)
        res = timer('result', lambda: [model.image_result([m[i] for m in maps], (im.height, im.width))
                                       for i, im in enumerate(imgs)])
        timer('outputs', lambda: [write_outputs(work, i, im, r, None, 'outline') for i, im, r in zip(batch, imgs, res)])


def main(model_dir:str, images:str, runtime:str='auto'):
    imports = time.perf_counter() - t0
    timer = Timer()
    model = timer('load', load_model, model_dir, None, runtime)
    print(repr(model))
    timed_network(model, timer)
    files = list_images(images)
    predict_parts(model, files, Path(tempfile.mkdtemp()), timer)
    s, n = timer.s, len(files)
    per = {k: 1e3*v/n for k, v in s.items() if k != 'load'}
    per['maps'] -= per['network']
    print(f"{n} images; imports {imports:.2f} s, model load {s['load']:.2f} s; ms per image: "
          + ', '.join(f"{k} {v:.1f}" for k, v in per.items()) + f"; imports per image {1e3*imports/n:.1f}")


if __name__ == '__main__': main(*sys.argv[1:])
