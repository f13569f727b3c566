"""ISIC 2018 Task 3 in its seven classes through the CLI: classify-train (lesion groups found beside the labels),
classify-predict (the official CSV, seven columns) and classify-evaluate (balanced accuracy and per-class figures,
the official scorer's balanced accuracy equal to ours)."""
import json, subprocess, sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from lesion_fastai.cls.labels import ISIC_CLASSES
from lesion_fastai.demo import demo_set
from lesion_fastai.io import find_isic_dev

EXE = str(Path(sys.executable).with_name('lesion_fastai'))
GT = 'ISIC2018_Task3_Training_GroundTruth'
GROUPS = 'ISIC2018_Task3_Training_LesionGroupings.csv'
# the five classes made from demo images: a tint of the lesion's pixels (R, G, B factors) and how many images
TINTS = {'BCC': ((1.15, .75, .85), 4), 'AKIEC': ((1.35, .55, .45), 4), 'BKL': ((1.1, 1.0, .55), 4),
         'DF': ((.6, .7, 1.3), 2), 'VASC': ((1.4, .3, .9), 4)}

def _run(*args, **kw): return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, **kw)

def _copy(src:Path, mask:Path, dest:Path, tint=None):
    "Copy an image (its lesion tinted by `tint`) and its mask into the set `dest`"
    img = np.asarray(Image.open(src).convert('RGB'), np.float32)
    m = np.asarray(Image.open(mask)) > 0
    if tint is not None: img[m] = np.clip(img[m]*np.array(tint, np.float32), 0, 255)
    Image.fromarray(img.astype(np.uint8)).save(dest/'images'/f'{src.stem}.jpg', quality=95)
    Image.fromarray((m*255).astype(np.uint8)).save(dest/'masks'/f'{src.stem}_segmentation.png')

def _isic_rows(dev:Path, dest:Path, n:int=6)->list:
    "`n` MEL and `n` NV images of isic-dev, copied with their masks: (image, class)"
    lab = pd.read_csv(dev/'labels.csv')
    lab = lab[[(dev/'masks'/f'{i}_segmentation.png').exists() for i in lab.image_id]]
    rows = [(i, c) for c in ('MEL', 'NV') for i in lab.image_id[lab.dx_mapped == c].head(n)]
    for i, _ in rows: _copy(dev/'images'/f'{i}.jpg', dev/'masks'/f'{i}_segmentation.png', dest)
    return rows

def _demo_rows(dest:Path)->list:
    "The demo images of the five other classes, their lesions tinted by class: (image, class)"
    src, rows = demo_set(n=24), []
    ids = iter(sorted(p.stem for p in (src/'images').glob('*.jpg')))
    for c, (tint, n) in TINTS.items():
        for i in [next(ids) for _ in range(n)]:
            _copy(src/'images'/f'{i}.jpg', src/'masks'/f'{i}_segmentation.png', dest, tint)
            rows.append((i, c))
    return rows

def _lesions(rows:list)->list:
    "A lesion ID per row: the first two images of every class show the same lesion"
    seen = {}
    out = []
    for i, c in rows:
        k = seen.setdefault(c, 0)
        seen[c] += 1
        out.append(f'L_{c}_0' if k < 2 else f'L_{i}')
    return out

def seven_class_set(dest:Path)->Path:
    "A tiny ISIC 2018 Task 3 layout in seven classes: images, masks, the one-hot ground truth, the lesion groupings"
    dev = find_isic_dev()
    if dev is None: pytest.skip('isic-dev is not here (LESION_ISIC_DEV)')
    for d in ('images', 'masks', GT): (dest/d).mkdir(parents=True, exist_ok=True)
    rows = _isic_rows(dev, dest) + _demo_rows(dest)
    onehot = pd.DataFrame([[float(c == k) for k in ISIC_CLASSES] for _, c in rows], columns=list(ISIC_CLASSES))
    onehot.insert(0, 'image', [i for i, _ in rows])
    onehot.to_csv(dest/GT/f'{GT}.csv', index=False)
    pd.DataFrame({'image': onehot.image, 'lesion_id': _lesions(rows), 'diagnosis_confirm_type': 'histopathology'}
                ).to_csv(dest/GROUPS, index=False)
    return dest

@pytest.fixture(scope='module')
def seven(tmp_path_factory): return seven_class_set(tmp_path_factory.mktemp('seven'))

SMALL = ['--size', 64, '--full-cycles', 1, '--crop-cycles', 1, '--cycle-len', 1, '--keep', 1, '--bs', 8, '--pretrained', 'none']

def _same_fold_per_lesion(seven:Path, oof:pd.DataFrame)->pd.Series:
    "The number of folds each lesion of the groupings file has images in"
    groups = pd.read_csv(seven/GROUPS).set_index('image')
    return oof.set_index('image_id').fold.groupby(groups.lesion_id).nunique()

@pytest.fixture(autouse=True)
def _pandas3_applymap(monkeypatch):
    "isic-challenge-scoring 5.6 calls `DataFrame.applymap`, which pandas 3 removed (`DataFrame.map` is the same)"
    if not hasattr(pd.DataFrame, 'applymap'): monkeypatch.setattr(pd.DataFrame, 'applymap', pd.DataFrame.map, raising=False)

def test_seven_classes(seven, tmp_path):
    "classify-train → classify-predict → classify-evaluate in the seven ISIC classes, lesion groups found beside the labels"
    gt = seven/GT/f'{GT}.csv'
    res = _run('classify-train', '--images', seven/'images', '--labels', gt, '--masks', seven/'masks',
               '--out', tmp_path/'cls', '--folds', 2, *SMALL)
    assert res.returncode == 0, res.stderr
    assert f"lesion groups: {(seven/GROUPS).resolve()} (found beside the labels)" in res.stdout, res.stdout
    assert '30 labelled images: MEL 6, NV 6, BCC 4, AKIEC 4, BKL 4, DF 2, VASC 4; 23 lesions' in res.stdout
    assert 'DF: its 2 image(s) are all in fold' in res.stdout          # one lesion: the other member never sees DF
    man = json.loads((tmp_path/'cls'/'classifier.json').read_text())
    assert man['classes'] == list(ISIC_CLASSES) and man['groups'] == str((seven/GROUPS).resolve())
    oof = pd.read_csv(tmp_path/'cls'/'oof.csv')
    assert (_same_fold_per_lesion(seven, oof) == 1).all()                # no lesion in two folds
    hyb = man['hybrid']                                                  # the hybrid: MEL operating point, 7 classes
    assert hyb['op_class'] == 'MEL' and list(hyb['prior']) == list(ISIC_CLASSES)
    assert all(f'{c}_auc' in hyb['out_of_fold']['hybrid'] for c in ISIC_CLASSES)
    assert (tmp_path/'cls'/'reliability.png').exists()
    pred = _run('classify-predict', '--model', tmp_path/'cls', '--images', seven/'images', '--masks', seven/'masks',
                '--out', tmp_path/'pred', '--truth', gt)
    assert pred.returncode == 0, pred.stderr
    assert '30 images classified' in pred.stdout and 'MEL flags at the out-of-fold operating point' in pred.stdout
    sub = pd.read_csv(tmp_path/'pred'/'predictions.csv')
    assert list(sub.columns) == ['image', *ISIC_CLASSES] and len(sub) == 30
    assert np.allclose(sub[list(ISIC_CLASSES)].sum(1), 1, atol=1e-6)
    rep = pd.read_csv(tmp_path/'pred'/'report.csv')
    assert {f'p_{c}' for c in ISIC_CLASSES} | {'MEL_flag', 'uncertainty'} <= set(rep.columns)
    ev = _run('classify-evaluate', '--truth', gt, '--pred', tmp_path/'pred'/'predictions.csv')
    assert ev.returncode == 0, ev.stderr
    lines = ev.stdout.splitlines()
    assert all(any(l.split()[:1] == [c] for l in lines) for c in ISIC_CLASSES), ev.stdout   # a line per class
    ours = json.loads(_run('classify-evaluate', '--truth', gt, '--pred', tmp_path/'pred'/'predictions.csv', '--json').stdout)
    scoring = pytest.importorskip('isic_challenge_scoring.classification')
    official = scoring.ClassificationScore.from_file(gt, tmp_path/'pred'/'predictions.csv',
                                                     scoring.ClassificationMetric.BALANCED_ACCURACY)
    assert abs(official.aggregate['balanced_accuracy'] - ours['balanced_accuracy']) < 1e-9
    per = official.per_category
    for c in ISIC_CLASSES:
        for k in ('sensitivity', 'specificity', 'auc'): assert abs(per.loc[c, k] - ours['per_class'][c][k]) < 1e-9, (c, k)
