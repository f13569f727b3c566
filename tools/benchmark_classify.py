"""Benchmark of the crop-then-classify series on isic-dev by nested, lesion-grouped, diagnosis-stratified cross-validation.

Outer folds (`--outer`, default 3): each labelled image is held out once. On the other images `train_classifier` trains a
KFoldCrop classifier (`--inner` members, default 3), each member SnapEsem on whole images then CropBest on crops from the
predicted masks in `--masks` (non-leaky: out-of-fold masks of the segmentation ensemble, written by
`tools/benchmark_ensemble.py --masks`). On the held-out images, pooled over the outer folds:
  - full image: each member's SnapEsem snapshots on whole images (a single model; mean over the members),
  - CropBest: each member's crop snapshots on crops (a single model; mean over the members),
  - KFoldCrop: all members together,
  - the peer: colour and texture statistics inside the *true* lesion mask, class-balanced logistic regression.
Usage: python tools/benchmark_classify.py [--data ../shared/data/isic-dev] [--masks runs/isic-dev-masks] [--out runs/cls]
                                         [--outer 3] [--inner 3] [ClassifyConfig settings: --size 128 --cycle-len 6 …]"""
import argparse, json, time
from pathlib import Path
import numpy as np, pandas as pd, torch

from lesion_fastai.data import list_images, load_image, read_mask
from lesion_fastai.metrics import balanced_accuracy, class_scores
from lesion_fastai.classify import (ClassifyConfig, Classifier, read_labels, label_folds, train_classifier, lesion_crops)


def peer_features(img:np.ndarray, mask:np.ndarray)->list:
    "The peer's features: colour statistics (RGB, HSV, Lab) and texture (GLCM, LBP) inside the lesion mask, and its area"
    from skimage.color import rgb2hsv, rgb2lab
    from skimage.feature import graycomatrix, graycoprops, local_binary_pattern
    m, f = mask.astype(bool), []
    for space in (img/255., rgb2hsv(img), rgb2lab(img)):
        v = space[m]; f += list(v.mean(0)) + list(v.std(0)) + list(np.percentile(v, [10, 50, 90], axis=0).ravel())
    g = (img @ [0.299, 0.587, 0.114]).astype(np.uint8)
    ys, xs = np.nonzero(m); sub = g[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    glcm = graycomatrix(sub//8, [1, 3], [0, np.pi/4, np.pi/2, 3*np.pi/4], levels=32, symmetric=True, normed=True)
    for p in ('contrast', 'homogeneity', 'energy', 'correlation'): f += list(graycoprops(glcm, p).mean(1))
    lbp = local_binary_pattern(g, 8, 1, 'uniform')
    return f + list(np.bincount(lbp[m].astype(int), minlength=10)/m.sum()) + [m.mean()]


def peer_probs(X_train, y_train, X_test)->np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    clf = make_pipeline(StandardScaler(), LogisticRegression(class_weight='balanced', max_iter=5000))
    return clf.fit(X_train, y_train).predict_proba(X_test)


def scores(y, probs, classes)->dict:
    cs = class_scores(y, probs, classes)
    return {'balanced_accuracy': round(balanced_accuracy(y, probs), 4),
            **{f'{c}_sensitivity': round(cs.loc[c, 'sensitivity'], 4) for c in classes},
            **{f'{c}_auc': round(cs.loc[c, 'auc'], 4) for c in classes}}


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default='../shared/data/isic-dev')
    p.add_argument('--masks', default='runs/isic-dev-masks', help='predicted masks of every image, none from a model trained on it')
    p.add_argument('--out', default='runs/cls')
    p.add_argument('--outer', type=int, default=3); p.add_argument('--inner', type=int, default=3)
    p.add_argument('--only-outer', type=int, nargs='+', help='run these outer folds only (the summary covers those done)')
    for k, v in ClassifyConfig().as_dict().items():
        if k in ('pretrained', 'input'): continue
        p.add_argument(f"--{k.replace('_', '-')}", type=type(v) if v is not None else float, default=v)
    a = p.parse_args()
    data, out = Path(a.data), Path(a.out); out.mkdir(parents=True, exist_ok=True)
    cfg = {k: getattr(a, k) for k in ClassifyConfig().as_dict() if hasattr(a, k)}
    files = list_images(data/'images')
    lab = read_labels(data/'labels.csv', images=files)
    classes = lab.attrs['classes']
    lab['outer'] = label_folds(lab, k=a.outer, seed=42)
    y = np.array([classes.index(l) for l in lab.label])
    print(f"{len(lab)} labelled images ({dict(lab.label.value_counts())}); {a.outer} outer x {a.inner} inner folds; {cfg}", flush=True)
    feats = {i: peer_features(np.asarray(load_image(files[i])), read_mask(data/'masks'/f'{i}_segmentation.png')) for i in lab.image_id}
    table = lab.merge(lesion_crops({i: files[i] for i in lab.image_id}, a.masks, None, dict(max_size=512), None, None, False), on='image_id')
    rows, timing = [], {}
    for o in (a.only_outer or range(a.outer)):
        d = out/f'outer{o}'; d.mkdir(exist_ok=True)
        train, test = lab[lab.outer != o], table[table.outer == o].reset_index(drop=True)
        train[['image_id', 'label']].to_csv(d/'labels.csv', index=False)
        t0 = time.time()
        clf = train_classifier(data/'images', d/'labels.csv', d, masks=a.masks, folds=a.inner, keep_stages=True,
                               progress=False, log=lambda s: print(f"[outer {o}] {s}", flush=True), **cfg)
        timing[o] = round((time.time() - t0)/60, 2)
        full = Classifier.load(d, stage='full')
        per = {'image_id': test.image_id, 'label': test.label, 'outer': o}
        for j in range(a.inner):
            per[f'crop{j}'] = list(Classifier([clf.members[j]]).predict_proba(test))
            per[f'full{j}'] = list(Classifier([full.members[j]]).predict_proba(test))
        per['kfoldcrop'] = list(np.mean([per[f'crop{j}'] for j in range(a.inner)], 0))
        per['snapesem_kfold'] = list(np.mean([per[f'full{j}'] for j in range(a.inner)], 0))
        tr = lab.outer != o
        per['peer'] = list(peer_probs(np.array([feats[i] for i in lab.image_id[tr]]), y[tr.to_numpy()],
                                      np.array([feats[i] for i in test.image_id])))
        rows.append(pd.DataFrame(per))
        t = time.time(); clf.predict_proba(test.iloc[:16]); timing[f'ms_per_image_kfoldcrop_{o}'] = round(1000*(time.time() - t)/16, 1)
        print(f"[outer {o}] done in {timing[o]} min", flush=True)
    res = pd.concat(rows).reset_index(drop=True)
    yy = np.array([classes.index(l) for l in res.label])
    stack = lambda c: np.stack(res[c].to_numpy())
    summary = {'images': len(res), 'classes': classes, 'config': cfg, 'outer': a.outer, 'inner': a.inner,
               'threads': torch.get_num_threads(), 'minutes_per_outer_fold': timing,
               'full_image_single': [scores(yy, stack(f'full{j}'), classes) for j in range(a.inner)],
               'cropbest_single': [scores(yy, stack(f'crop{j}'), classes) for j in range(a.inner)],
               'snapesem_kfold': scores(yy, stack('snapesem_kfold'), classes),
               'kfoldcrop': scores(yy, stack('kfoldcrop'), classes),
               'peer_true_masks': scores(yy, stack('peer'), classes)}
    for k in ('full_image_single', 'cropbest_single'):
        summary[f'{k}_mean_balanced_accuracy'] = round(float(np.mean([s['balanced_accuracy'] for s in summary[k]])), 4)
    res.assign(**{c: [list(map(float, v)) for v in res[c]] for c in res.columns if c not in ('image_id', 'label', 'outer')}).to_csv(out/'heldout.csv', index=False)
    (out/'benchmark.json').write_text(json.dumps(summary, indent=1, default=str))
    print(json.dumps(summary, indent=1, default=str), flush=True)
