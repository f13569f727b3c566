"""Benchmark of the classifiers on isic-dev: nested, lesion-grouped, diagnosis-stratified cross-validation of the CNN, the features, the hybrid and the peer; leave-one-source-out for the models without a CNN; a shuffled-label check.

Outer folds (`--outer`, default 3): each labelled image is held out once. On the other images `train_classifier` trains
a KFoldCrop classifier (`--inner` members, default 3, each to a `--minutes` budget per outer fold when given) on crops
from the predicted masks in `--masks` (non-leaky: the out-of-fold masks of a segmentation ensemble, e.g.
ENS/oof_masks of `lesion_fastai train --folds 3 --out ENS`), and fits its hybrid on its members' out-of-fold
probabilities. The held-out images are scored, pooled over the outer folds, by:
  - cnn: the KFoldCrop members together (the classifier's recalibrated `cnn` variant),
  - features: the dermoscopic features (`lesion_fastai.cls.features`) alone,
  - hybrid: both, stacked,
  - the peer: colour and texture statistics inside the mask, class-balanced logistic regression, on the predicted masks
    and on the true masks.
Leave-one-source-out (features, peer): trained on one source of isic-dev's labelled images, tested on the other.
Shuffled labels: the features model and the stack refitted on permuted labels with the CNN's out-of-fold probabilities
must score chance out of fold (nothing scores its own label).
Usage: python tools/benchmark_classify.py --masks ENS/oof_masks [--data ../shared/data/isic-dev] [--out runs/cls]
                                         [--outer 3] [--inner 3] [--minutes 10] [ClassifyConfig settings: --size 128 …]
       python tools/benchmark_classify.py --masks ENS/oof_masks --classifier CLS   (CLS: `lesion_fastai classify-train
       --seg-model ENS --folds 3` on the same images: its folds are the outer folds, its hybrid nests the stack)"""
import argparse, json, time
from pathlib import Path
import numpy as np, pandas as pd, torch

from lesion_fastai.io import list_images, list_masks
from lesion_fastai.metrics import balanced_accuracy, class_scores
from lesion_fastai.config import ClassifyConfig
from lesion_fastai.cls.predict import Classifier
from lesion_fastai.cls.labels import read_labels, label_folds
from lesion_fastai.cls.train import train_classifier
from lesion_fastai.cls.crop import lesion_crops
from lesion_fastai.cls.features import feature_table
from lesion_fastai.cls.hybrid import VARIANTS, FEATURES_C, balanced_logistic, fit_hybrid, load_hybrid, predict_hybrid


def scores(y, probs, classes)->dict:
    cs = class_scores(y, probs, classes)
    return {'balanced_accuracy': round(balanced_accuracy(y, probs), 4),
            **{f'{c}_sensitivity': round(cs.loc[c, 'sensitivity'], 4) for c in classes},
            **{f'{c}_auc': round(cs.loc[c, 'auc'], 4) for c in classes}}


def fit_predict(X_train, y_train, X_test, C:float=1.)->np.ndarray:
    "Class-balanced logistic regression (the peer's model at C=1) fitted and applied"
    return balanced_logistic(C).fit(X_train, y_train).predict_proba(X_test)


def loso(tables:dict, y, src, classes)->dict:
    "Leave-one-source-out scores of feature tables: trained on the other sources, tested on each"
    res = {}
    for name, (X, C) in tables.items():
        for s in np.unique(src):
            tr, te = src != s, src == s
            res[f'{name}, tested on {s}'] = scores(y[te], fit_predict(X[tr], y[tr], X[te], C), classes)
    return res


def shuffled(feats:pd.DataFrame, cnn_oof:pd.DataFrame, lab:pd.DataFrame, classes, n:int=5)->dict:
    "Out-of-fold balanced accuracy of the three variants refitted on permuted labels (mean of `n` permutations)"
    rng, res = np.random.default_rng(0), {v: [] for v in VARIANTS}
    ids = cnn_oof.index
    for _ in range(n):
        perm = pd.Series(rng.permutation(lab.loc[ids, 'label'].to_numpy()), index=ids)
        h = fit_hybrid(feats.loc[ids], cnn_oof, perm, lab.loc[ids, 'outer'], classes)
        for v in VARIANTS: res[v].append(h.scores[v]['balanced_accuracy'])
    return {v: {'mean': round(float(np.mean(x)), 4), 'runs': [round(b, 4) for b in x]} for v, x in res.items()}


def classifier_oof(d:Path, lab:pd.DataFrame, classes)->pd.DataFrame:
    "The nested out-of-fold probabilities of a `classify-train --folds` classifier's variants, and its raw KFoldCrop ones"
    h, raw = pd.read_csv(d/'hybrid_oof.csv', index_col='image_id'), pd.read_csv(d/'oof.csv', index_col='image_id')
    if not (h.fold == lab.loc[h.index, 'outer']).all(): raise SystemExit(f"{d}: its folds are not the benchmark's outer folds (--outer, seed 42)")
    cols = {v: list(h[[f'{v}_{c}' for c in classes]].to_numpy()) for v in VARIANTS}
    return pd.DataFrame({'image_id': h.index, **cols, 'cnn (KFoldCrop, not recalibrated)': list(raw.loc[h.index, classes].to_numpy())})


def outer_fold(o, a, data, out, lab, table, feats, cfg)->pd.DataFrame:
    "Train the classifier of outer fold `o` and score its held-out images with every variant"
    d = out/f'outer{o}'; d.mkdir(exist_ok=True)
    train, test = lab[lab.outer != o], table[table.outer == o].reset_index(drop=True)
    train[['image_id', 'label']].to_csv(d/'labels.csv', index=False)
    t0 = time.time()
    clf = train_classifier(data/'images', d/'labels.csv', d, masks=a.masks, folds=a.inner, progress=False,
                           log=lambda s: print(f"[outer {o}] {s}", flush=True), **cfg)
    minutes = round((time.time() - t0)/60, 2)
    h, members = load_hybrid(d), clf.member_probs(test)
    per = {'image_id': test.image_id, 'label': test.label, 'outer': o, 'train_minutes': minutes}
    for v in VARIANTS:
        per[v] = list(predict_hybrid(h, feats.loc[test.image_id], list(members), v)[0])
    per['cnn_mean'] = list(members.mean(0))
    print(f"[outer {o}] done in {minutes} min", flush=True)
    return pd.DataFrame(per)


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default='../shared/data/isic-dev')
    p.add_argument('--masks', required=True, help='predicted masks of every image, none from a model trained on it')
    p.add_argument('--out', default='runs/cls')
    p.add_argument('--outer', type=int, default=3); p.add_argument('--inner', type=int, default=3)
    p.add_argument('--only-outer', type=int, nargs='+', help='run these outer folds only (the summary covers those done)')
    p.add_argument('--no-cnn', action='store_true', help='features, peer, leave-one-source-out only (minutes, not an hour)')
    p.add_argument('--classifier', help='instead of training one per outer fold: a classifier made by `classify-train --folds '
                   'OUTER` on all labelled images (its folds are the outer folds); its nested out-of-fold variants are scored')
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
    src = pd.read_csv(data/'provenance.csv').set_index('image_id').loc[lab.image_id, 'dataset'].str.split(' \\(|,').str[0].to_numpy()
    y = np.array([classes.index(l) for l in lab.label])
    print(f"{len(lab)} labelled images ({dict(lab.label.value_counts())}); sources {dict(pd.Series(src).value_counts())}; "
          f"{a.outer} outer x {a.inner} inner folds; {cfg}", flush=True)
    t = time.time()
    pred_masks, true_masks = list_masks(a.masks), list_masks(data/'masks')
    lab_files = {i: files[i] for i in lab.image_id}
    feats = feature_table(lab_files, pred_masks).loc[lab.image_id]
    peer_pred = feature_table(lab_files, pred_masks, kind='peer').loc[lab.image_id]
    peer_true = feature_table(lab_files, true_masks, kind='peer').loc[lab.image_id]
    print(f"features of {len(lab)} images (ours on predicted masks, the peer's on predicted and true) in {time.time() - t:.0f} s", flush=True)
    lab = lab.set_index('image_id', drop=False)
    summary = {'images': len(lab), 'classes': classes, 'config': cfg, 'outer': a.outer, 'inner': a.inner,
               'threads': torch.get_num_threads(), 'masks': str(a.masks)}
    res = {'image_id': lab.image_id, 'label': lab.label, 'outer': lab.outer}
    for name, X, C in (('features', feats, None), ('peer, predicted masks', peer_pred, 1.), ('peer, true masks', peer_true, 1.)):
        oof = np.zeros((len(y), len(classes)))
        for o in range(a.outer):
            tr, te = lab.outer.to_numpy() != o, lab.outer.to_numpy() == o
            oof[te] = fit_predict(X.to_numpy(float)[tr], y[tr], X.to_numpy(float)[te], C or FEATURES_C)
        res[f'{name} (no CNN)'] = list(oof)
    summary['leave_one_source_out'] = loso({'features': (feats.to_numpy(float), FEATURES_C),
                                            'peer, predicted masks': (peer_pred.to_numpy(float), 1.),
                                            'peer, true masks': (peer_true.to_numpy(float), 1.)}, y, src, classes)
    nocnn = pd.DataFrame(res).reset_index(drop=True)
    if a.classifier:
        held = nocnn.merge(classifier_oof(Path(a.classifier), lab, classes), on='image_id')
        cnn_oof = pd.read_csv(Path(a.classifier)/'oof.csv', index_col='image_id')
        summary['classifier'] = json.loads((Path(a.classifier)/'classifier.json').read_text())
        summary['shuffled_labels'] = {'classifier': a.classifier, 'images': len(cnn_oof),
                                      **shuffled(feats, cnn_oof[classes], lab.assign(outer=cnn_oof.fold.reindex(lab.index)), classes)}
    elif not a.no_cnn:
        table = lab.reset_index(drop=True).merge(lesion_crops(lab_files, a.masks, None, dict(max_size=512), None, None, False), on='image_id')
        rows = [outer_fold(o, a, data, out, lab.reset_index(drop=True), table, feats, cfg) for o in (a.only_outer or range(a.outer))]
        held = pd.concat(rows).reset_index(drop=True).merge(nocnn.drop(columns=['label', 'outer']), on='image_id')
        summary['minutes_per_outer_fold'] = held.groupby('outer').train_minutes.first().to_dict()
        o0 = (a.only_outer or [0])[0]                    # the stack of one outer fold's classifier, its inner folds
        cnn_oof = pd.read_csv(out/f'outer{o0}'/'oof.csv', index_col='image_id')
        summary['shuffled_labels'] = {'classifier': f'outer{o0}', 'images': len(cnn_oof),
                                      **shuffled(feats, cnn_oof[classes], lab.loc[cnn_oof.index].assign(outer=cnn_oof.fold), classes)}
    else: held = nocnn
    yy = np.array([classes.index(l) for l in held.label])
    cols = [c for c in held.columns if c not in ('image_id', 'label', 'outer', 'train_minutes')]
    summary['nested_cv'] = {c: scores(yy, np.stack(held[c].to_numpy()), classes) for c in cols}
    summary['nested_cv_per_outer_fold'] = {c: [round(balanced_accuracy(yy[held.outer == o], np.stack(held[c][held.outer == o].to_numpy())), 4)
                                               for o in sorted(held.outer.unique())] for c in cols}
    held.assign(**{c: [list(map(float, v)) for v in held[c]] for c in cols}).to_csv(out/'heldout.csv', index=False)
    (out/'benchmark.json').write_text(json.dumps(summary, indent=1, default=str))
    print(json.dumps(summary, indent=1, default=str), flush=True)
