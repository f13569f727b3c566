"""Build a miniature ISIC 2018: the challenge's archive names, the folder names inside each zip, ATTRIBUTION.txt and
LICENSE.txt in each, the real CSV columns; a few dozen small images, in seconds, the same bytes on every run.

    python tools/mini_isic2018.py --out /tmp/mini-isic2018

Task 1 (and Task 2's inputs): image/mask pairs of isic-dev (`lesion_fastai.io.find_isic_dev`, read in place, downsized
to at most 256 px), or of the generated demo set (`lesion_fastai.demo`) where isic-dev is absent. Task 3 in its seven
classes: NV and MEL from isic-dev's labels.csv (demo images where absent), BCC, AKIEC, BKL, DF and VASC demo images,
each class tinted in its own colour inside the lesion so that a tiny classifier can tell them apart; the training
images come in pairs of one lesion (the second turned and flipped), listed in the lesion groupings CSV.
Every image gets a new ID `ISIC_99xxxxx`; ATTRIBUTION.txt says where each one comes from.
Serve the folder with `lesion_fastai.download.ArchiveMirror(out)` and point `LESION_FASTAI_ISIC_URL` at it."""
import hashlib, io, zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from fastcore.script import call_parse

from lesion_fastai.demo import synth_dermoscopy
from lesion_fastai.io import atomic_write, find_isic_dev

CLASSES = ('MEL', 'NV', 'BCC', 'AKIEC', 'BKL', 'DF', 'VASC')   # the column order of the Task 3 ground truth
TINTS = {'MEL': (.15, .08, .10), 'NV': None, 'BCC': (.45, .55, .85), 'AKIEC': (.95, .35, .30),
         'BKL': (.85, .75, .35), 'DF': (.95, .95, .90), 'VASC': (.70, .10, .45)}    # RGB blended into the lesion
ATTRIBUTE_NAMES = ('globules', 'milia_like_cyst', 'negative_network', 'pigment_network', 'streaks')
SPLITS = {'train': 'Training', 'valid': 'Validation', 'test': 'Test'}
MAX_SIDE = 256
DATE = (2018, 4, 1, 0, 0, 0)                    # every zip entry's time: the same bytes on every run
LICENSE = """Miniature ISIC 2018 for tests and tutorials of lesion_fastai: NOT the challenge data.
Images from isic-dev (ISIC archive images: CC-0 / CC-BY-NC; ISIC 2017 ground truth: CC-BY-NC, Codella et al., ISBI
2018; PH2: research use, Mendonca et al., EMBC 2013) and synthetic images of lesion_fastai.demo (Apache-2.0).
Non-commercial research use only. The real ISIC 2018 data: https://challenge.isic-archive.com/data/#2018
"""

# Sources: each image is a dict(img=PIL RGB, mask=uint8 0/255 or None, source=str)
def _downsized(img:Image.Image, resample)->Image.Image:
    "`img` with its longer side at most `MAX_SIDE`"
    f = MAX_SIDE/max(img.size)
    if f >= 1: return img
    return img.resize((round(img.width*f), round(img.height*f)), resample)

def _dev_pair(dev:Path, iid:str)->dict:
    "An isic-dev image and its mask, downsized"
    img = Image.open(dev/'images'/f'{iid}.jpg').convert('RGB')
    msk = Image.open(dev/'masks'/f'{iid}_segmentation.png').convert('L')
    return dict(img=_downsized(img, Image.LANCZOS), mask=np.asarray(_downsized(msk, Image.NEAREST)),
                source=f'isic-dev {iid}')

def _demo_pair(seed:int, i:int, tint=None)->dict:
    "A demo image and its mask (`synth_dermoscopy`), its lesion blended towards `tint`"
    img, msk = synth_dermoscopy(np.random.default_rng([seed, i]))
    if tint is not None: img = _tinted(img, msk, tint)
    return dict(img=img, mask=msk*255, source=f'lesion_fastai.demo synth_dermoscopy seed [{seed}, {i}]')

def _tinted(img:Image.Image, msk:np.ndarray, tint, strength:float=.55)->Image.Image:
    "`img` with its lesion (`msk` > 0) blended towards the colour `tint`"
    a = np.asarray(img, np.float32)/255
    w = (msk > 0)[..., None]*strength
    return Image.fromarray(np.uint8(np.clip(a*(1 - w) + w*np.float32(tint), 0, 1)*255 + .5))

def _dev_ids(dev:Path, seed:int)->list:
    "isic-dev's image IDs, shuffled by `seed`"
    ids = sorted(p.stem for p in (dev/'images').glob('*.jpg'))
    return list(np.random.default_rng(seed).permutation(ids))

@lru_cache(maxsize=4)
def _dev_labelled(dev:Path, seed:int)->dict:
    "isic-dev's NV and MEL image IDs, each list shuffled by `seed`"
    lab = pd.read_csv(dev/'labels.csv', dtype=str)
    rng = np.random.default_rng(seed)
    return {c: list(rng.permutation(sorted(lab.image_id[lab.dx_mapped == c]))) for c in ('NV', 'MEL')}

# Task 1
def task1_pairs(dev:Path|None, counts:dict, seed:int)->dict:
    "Split name → image/mask pairs: isic-dev's (none of its NV/MEL-labelled images), else the demo generator's"
    n = sum(counts.values())
    if dev is None: pairs = [_demo_pair(seed, i) for i in range(n)]
    else: pairs = [_dev_pair(dev, i) for i in _unlabelled(dev, seed)[:n]]
    starts = np.cumsum([0, *counts.values()])
    return {s: pairs[a:b] for s, a, b in zip(counts, starts[:-1], starts[1:])}

def _unlabelled(dev:Path, seed:int)->list:
    "isic-dev's shuffled IDs, the NV/MEL-labelled ones (Task 3's) last"
    used = set(sum(_dev_labelled(dev, seed).values(), []))
    ids = _dev_ids(dev, seed)
    return [i for i in ids if i not in used] + [i for i in ids if i in used]

# Task 3
def _class_image(dev:Path|None, cls:str, j:int, seed:int)->dict:
    "The `j`-th image of class `cls`: isic-dev's NV/MEL where there is one, else a tinted demo image"
    if dev is not None and cls in ('NV', 'MEL'): return _dev_pair(dev, _dev_labelled(dev, seed)[cls][j])
    return _demo_pair(seed + 1 + CLASSES.index(cls), j, TINTS[cls])

def _second_view(p:dict)->dict:
    "Another image of the same lesion: turned a quarter and mirrored, as a second dermoscopy of it would differ"
    img = p['img'].transpose(Image.ROTATE_90).transpose(Image.FLIP_LEFT_RIGHT)
    return dict(p, img=img, mask=None, source=p['source'] + ' (turned 90° and mirrored)')

def _views(p:dict, n:int, cls:str, lesion:int)->list:
    "(image, class, lesion number) of `n` images of one lesion: `p`, then its second view"
    return [(v, cls, lesion) for v in [p, _second_view(p)][:n]]

def _split_rows(dev:Path|None, n:int, j:int, lesion:int, views:int, seed:int)->list:
    "(image, class, lesion number) of `n` lesions a class, each class's images from its `j`-th, lesions from `lesion`"
    rows = []
    for c, cls in enumerate(CLASSES):
        for k in range(n): rows += _views(_class_image(dev, cls, j + k, seed), views, cls, lesion + c*n + k)
    return rows

def task3_images(dev:Path|None, counts:dict, seed:int, per_lesion:int=2)->dict:
    "Split name → list of (image, class, lesion number); the training images `per_lesion` to a lesion"
    out, j, lesion = {}, 0, 0
    for split, n in counts.items():
        out[split] = _split_rows(dev, n, j, lesion, per_lesion if split == 'train' else 1, seed)
        j, lesion = j + n, lesion + n*len(CLASSES)
    return out

# Writing the archives
def _jpeg(img:Image.Image)->bytes:
    "`img` as JPEG bytes (quality 90)"
    b = io.BytesIO()
    img.save(b, format='JPEG', quality=90)
    return b.getvalue()

def _png(arr:np.ndarray)->bytes:
    "The uint8 array `arr` as a single-channel PNG"
    b = io.BytesIO()
    Image.fromarray(np.uint8(arr)).save(b, format='PNG')
    return b.getvalue()

def _attribution(entries:dict)->str:
    "ATTRIBUTION.txt: where each image of an archive comes from"
    lines = [f'{name}: {src}' for name, src in sorted(entries.items())]
    return 'Sources of the images in this archive (miniature ISIC 2018 of lesion_fastai):\n' + '\n'.join(lines) + '\n'

def write_zip(path:Path, folder:str, files:dict, sources:dict):
    "Write the zip `path`: `folder/` holding `files` (name → bytes), ATTRIBUTION.txt and LICENSE.txt, atomically"
    files = {**files, 'ATTRIBUTION.txt': _attribution(sources).encode(), 'LICENSE.txt': LICENSE.encode()}
    with atomic_write(path) as tmp, zipfile.ZipFile(tmp, 'w') as z:
        for name in sorted(files):
            info = zipfile.ZipInfo(f'{folder}/{name}', date_time=DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, files[name])

def _iid(n:int)->str: return f'ISIC_{9900000 + n:07d}'

def _attributes(mask:np.ndarray)->dict:
    "Task 2's five attribute masks of a lesion: the pigment network covers it, the other four are empty"
    return {a: mask if a == 'pigment_network' else np.zeros_like(mask) for a in ATTRIBUTE_NAMES}

def _task12_files(pairs:list, first:int)->tuple:
    "(images, Task 1 masks, Task 2 masks, sources) of `pairs`, named from the ID number `first`"
    ims, t1, t2, src = {}, {}, {}, {}
    for n, p in enumerate(pairs, first):
        iid = _iid(n)
        ims[f'{iid}.jpg'], src[f'{iid}.jpg'] = _jpeg(p['img']), p['source']
        t1[f'{iid}_segmentation.png'] = _png(p['mask'])
        t2.update({f'{iid}_attribute_{a}.png': _png(m) for a, m in _attributes(p['mask']).items()})
    return ims, t1, t2, src

def write_task12(out:Path, pairs:dict, first:int=0)->int:
    "Write Task 1 and 2's archives of every split; the next free ID number"
    for split, ps in pairs.items():
        name = SPLITS[split]
        ims, t1, t2, src = _task12_files(ps, first)
        write_zip(out/f'ISIC2018_Task1-2_{name}_Input.zip', f'ISIC2018_Task1-2_{name}_Input', ims, src)
        write_zip(out/f'ISIC2018_Task1_{name}_GroundTruth.zip', f'ISIC2018_Task1_{name}_GroundTruth', t1, src)
        t2_name = f'ISIC2018_Task2_{name}_GroundTruth' + ('_v3' if split == 'train' else '')
        write_zip(out/f'{t2_name}.zip', t2_name, t2, src)
        first += len(ps)
    return first

def _onehot(rows:list, ids:list)->pd.DataFrame:
    "The Task 3 ground truth: `image` and one float column per class, 1.0 for the image's class"
    df = pd.DataFrame({'image': ids})
    for c in CLASSES: df[c] = [1.0 if cls == c else 0.0 for _, cls, _ in rows]
    return df

def _groupings(rows:list, ids:list)->pd.DataFrame:
    "HAM10000's lesion groupings: `image,lesion_id,diagnosis_confirm_type`"
    return pd.DataFrame({'image': ids, 'lesion_id': [f'HAM_{9900000 + les:07d}' for _, _, les in rows],
                         'diagnosis_confirm_type': 'synthetic'})

def _csv(df:pd.DataFrame)->bytes: return df.to_csv(index=False).encode()

def write_task3(out:Path, images:dict, first:int)->int:
    "Write Task 3's archives of every split and the training lesion groupings; the next free ID number"
    for split, rows in images.items():
        name = SPLITS[split]
        ids = [_iid(n) for n in range(first, first + len(rows))]
        src = {f'{i}.jpg': v['source'] for i, (v, _, _) in zip(ids, rows)}
        ims = {f'{i}.jpg': _jpeg(v['img']) for i, (v, _, _) in zip(ids, rows)}
        write_zip(out/f'ISIC2018_Task3_{name}_Input.zip', f'ISIC2018_Task3_{name}_Input', ims, src)
        gt = {f'ISIC2018_Task3_{name}_GroundTruth.csv': _csv(_onehot(rows, ids))}
        write_zip(out/f'ISIC2018_Task3_{name}_GroundTruth.zip', f'ISIC2018_Task3_{name}_GroundTruth', gt, src)
        if split == 'train':
            with atomic_write(out/'ISIC2018_Task3_Training_LesionGroupings.csv') as tmp:
                tmp.write_bytes(_csv(_groupings(rows, ids)))
        first += len(rows)
    return first

def write_sums(out:Path):
    "SHA256SUMS: the size and hash of every archive (what a download of this mirror must find)"
    files = sorted(p for p in out.iterdir() if p.suffix in ('.zip', '.csv'))
    lines = [f'{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}' for p in files]
    with atomic_write(out/'SHA256SUMS') as tmp: tmp.write_text('\n'.join(lines) + '\n')

def mini_isic2018(out, task1=(24, 8, 8), task3=(4, 2, 2), seed:int=0, dev='auto')->Path:
    "Write the miniature ISIC 2018 into `out`; `task3` counts lesions per class (training: two images each)"
    out = Path(out)
    dev = find_isic_dev() if dev == 'auto' else dev
    n = write_task12(out, task1_pairs(dev, dict(zip(SPLITS, task1)), seed))
    write_task3(out, task3_images(dev, dict(zip(SPLITS, task3)), seed), n)
    write_sums(out)
    return out

@call_parse
def main(out:str='mini-isic2018', # Folder to write the archives into (created)
         seed:int=0,               # Same seed, same bytes
         generated:bool=False,     # Generated images only, even where isic-dev is present
        ):
    "Build a miniature ISIC 2018 (Task 1, 2 and 3 archives) in `out`"
    mini_isic2018(out, seed=seed, dev=None if generated else 'auto')
    for p in sorted(Path(out).iterdir()): print(f'{p.stat().st_size:>9,}  {p.name}')
