"""Benchmark of 3-fold ensembling: train `train_ensemble(folds=3, minutes=M)` on isic-dev less a held-out test fold,
then score on the held-out images at original resolution: each member alone, the ensemble, with and without TTA; the QC
flag; inference time. The held-out fold is the segmentation recipe benchmark's (fold 0 of 5, seed 42), so the single
30-minute model of `tools/benchmark_segmentation.py` is scored on the same images.
Usage: python tools/benchmark_ensemble.py [--data ../shared/data/isic-dev] [--minutes 30] [--out runs/ens30] [--masks DIR]"""
import argparse, json, time
from pathlib import Path
import numpy as np, pandas as pd, torch

from lesion_fastai.io import find_pairs, load_image, read_mask, save_mask
from lesion_fastai.data import cache_pairs, kfold_splits
from lesion_fastai.metrics import score_masks, summarize_scores
from lesion_fastai.seg.recipe import postprocess_mask, probs_to_size
from lesion_fastai.seg.ensemble import Ensemble, train_ensemble, out_of_fold, mask_jaccard, disagreement, mean_maps

def scores_of(ids, truths, masks):
    t = pd.DataFrame([{'image_id': i, **score_masks(t, m)} for i, t, m in zip(ids, truths, masks)]).set_index('image_id')
    return t

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default='../shared/data/isic-dev')
    p.add_argument('--minutes', type=float, default=30)
    p.add_argument('--folds', type=int, default=3)
    p.add_argument('--epochs', type=int, help='epochs per member instead of planning them from --minutes (a fixed amount '
                   'of training, independent of other load on the machine)')
    p.add_argument('--out', default='runs/ens30')
    p.add_argument('--masks', help='also write non-leaky predicted masks of every image here (out-of-fold / held-out)')
    a = p.parse_args()
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    pairs = find_pairs(a.data)
    cached = cache_pairs(pairs, size=384)                       # as train_segmenter splits (same ids, same order)
    test_ids = set(cached.image_id[kfold_splits(cached.image_id, k=5, seed=42) == 0])
    train = pairs[~pairs.image_id.isin(test_ids)].reset_index(drop=True)
    test = pairs[pairs.image_id.isin(test_ids)].sort_values('image_id').reset_index(drop=True)
    print(f"{len(train)} images for the ensemble, {len(test)} held out", flush=True)
    t0 = time.time()
    budget = dict(epochs=a.epochs) if a.epochs else dict(minutes=a.minutes)
    ens = train_ensemble(train, out/'ensemble', folds=a.folds, progress=False, **budget)
    train_wall = time.time() - t0
    ens = Ensemble.load(out/'ensemble')
    # held-out images: every member, with and without TTA, at original resolution
    ids = list(test.image_id)
    truths = [read_mask(m) for m in test['mask']]
    imgs = [load_image(f) for f in test['image']]
    res, per_image = {}, {}
    maps = {tta: ens.member_maps(imgs, tta=tta) for tta in (False, True)}
    for tta in (False, True):
        for f, (learn, cfg) in enumerate(ens.members):
            masks = []
            for i, im in enumerate(imgs):
                m = (probs_to_size(maps[tta][f][i], (im.height, im.width)) > cfg['threshold']).astype(np.uint8)
                masks.append(postprocess_mask(m) if cfg['postprocess'] else m)
            s = scores_of(ids, truths, masks)
            res[f"member{f}{'_tta' if tta else ''}"] = summarize_scores(s)['threshold_jaccard']
        rows = []
        for i, im in enumerate(imgs):
            prob = mean_maps([m[i] for m in maps[tta]], (im.height, im.width)); mask = ens.decide(prob)
            sz = max(m[i].shape[-1] for m in maps[tta])
            own = [ens.decide(probs_to_size(m[i], (sz, sz))) for m in maps[tta]]
            rows.append({'image_id': ids[i], **score_masks(truths[i], mask), 'disagreement': disagreement(prob, mask),
                         'member_jaccard': float(np.mean([mask_jaccard(x, y) for j, x in enumerate(own) for y in own[j+1:]]))})
        s = pd.DataFrame(rows).set_index('image_id')
        s['qc_flag'] = s.disagreement > ens.qc_threshold
        s.to_csv(out/f"heldout_ensemble{'_tta' if tta else ''}.csv")
        res[f"ensemble{'_tta' if tta else ''}"] = summarize_scores(s.drop(columns=['disagreement', 'member_jaccard', 'qc_flag']))['threshold_jaccard']
        per_image[tta] = s
    s = per_image[True]; fails = s.jaccard < 0.65
    mean_single = float(np.mean([res[f'member{f}'] for f in range(a.folds)]))
    # inference time, steady state: image decode + 3 members x 8 views + resize + decision + QC, one image at a time and in batches of 8
    ens.predict(imgs[:2])
    t = time.time(); [ens.predict([load_image(f)]) for f in test['image']]; t_one = (time.time() - t)/len(test)
    t = time.time()
    for j in range(0, len(test), 8): ens.predict([load_image(f) for f in test['image'][j:j+8]])
    t_batch = (time.time() - t)/len(test)
    oof = pd.read_csv(out/'ensemble'/'oof.csv')
    man = json.loads((out/'ensemble'/'ensemble.json').read_text())
    epochs = [json.loads((out/'ensemble'/f'fold{f}'/'config.json').read_text())['epochs'] for f in range(a.folds)]
    summary = {'budget': (f"{a.epochs} epochs per member" if a.epochs else f"{a.minutes} min in total ({a.minutes/a.folds:.1f} per member)"),
               'member_epochs': epochs, 'image_epochs': sum(e[2] for ep in epochs for e in ep)*len(train)*(a.folds - 1)//a.folds,
               'threads': torch.get_num_threads(), 'train_wall_min': round(train_wall/60, 2),
               'train_images': len(train), 'heldout_images': len(test), 'members': man['members'],
               'threshold': ens.threshold, 'postprocess': ens.postprocess, 'qc_threshold': round(ens.qc_threshold, 4),
               'oof': man['oof'], 'heldout_threshold_jaccard': {k: round(v, 4) for k, v in res.items()},
               'heldout_mean_single_fold': round(mean_single, 4),
               'heldout_ensemble_tta_jaccard': round(s.jaccard.mean(), 4), 'heldout_ensemble_tta_dice': round(s.dice.mean(), 4),
               'qc_heldout': {'failures (jaccard < 0.65)': int(fails.sum()), 'caught': int((s.qc_flag & fails).sum()),
                              'recall_of_failures': round(float(s.qc_flag[fails].mean()), 4) if fails.any() else None,
                              'flagged_fraction': round(float(s.qc_flag.mean()), 4),
                              'member_jaccard_recall_at_same_flag_rate': None},
               'ms_per_image_one_at_a_time': round(1000*t_one, 1), 'ms_per_image_batches_of_8': round(1000*t_batch, 1)}
    # the alternative score (members' mutual Jaccard), flagging as many images, for comparison
    n_flag = int(s.qc_flag.sum())
    if n_flag:
        alt = s.member_jaccard <= np.sort(s.member_jaccard.values)[n_flag - 1]
        summary['qc_heldout']['member_jaccard_recall_at_same_flag_rate'] = round(float(alt[fails].mean()), 4) if fails.any() else None
    (out/'benchmark.json').write_text(json.dumps(summary, indent=1, default=str))
    print(json.dumps(summary, indent=1, default=str), flush=True)
    if a.masks:                                                  # non-leaky masks of every image, for the classification series
        md = Path(a.masks); md.mkdir(parents=True, exist_ok=True)
        by_id = pairs.set_index('image_id')
        oof_maps, _ = out_of_fold(ens.members, train, tta=True)
        for i, m in oof_maps:
            im = load_image(by_id.loc[i, 'image'])
            save_mask(ens.decide(probs_to_size(m, (im.height, im.width))), md/f'{i}_segmentation.png')
        for i, im in enumerate(imgs):
            save_mask(ens.decide(mean_maps([m[i] for m in maps[True]], (im.height, im.width))), md/f'{ids[i]}_segmentation.png')
        md.with_suffix('.txt').write_text(f"Predicted lesion masks of {a.data}: out-of-fold predictions of the 3-fold ensemble in "
                                     f"{out/'ensemble'} for its {len(train)} training images, the ensemble's (TTA) for the "
                                     f"{len(test)} held-out images. No mask comes from a model that trained on its image.\n")
        print(f"masks of {len(pairs)} images in {md}")
