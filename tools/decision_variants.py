"""Decision rules compared on saved probability maps: thresholds, two thresholds (hysteresis), and post-processing.

    python tools/decision_variants.py --probs DIR --truth DIR

`DIR` of `--probs` holds `<ID>_prob.png` maps (`lesion_fastai predict --probs`); `--truth` the truth masks. Every rule but
the post-processing variants is followed by the default post-processing (largest component, holes filled); each is
scored by the official rules and compared with a threshold of 0.5, image by image (`lesion_fastai.stats.paired_table`),
and with `--against PRED` also with another arm's masks (the plain loop's, say). The two-threshold rule
(`skimage.filters.apply_hysteresis_threshold`) keeps the pixels above `low` that connect to a pixel above `high`: the
ISIC 2017 winner's answer to a lesion's light rim."""
import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from skimage.filters import apply_hysteresis_threshold

from lesion_fastai.io import read_mask
from lesion_fastai.metrics import score_masks, score_folders
from lesion_fastai.stats import paired_table
from lesion_fastai.seg.recipe import postprocess_mask


def _post(m:np.ndarray, fill:bool=True, largest:bool=True)->np.ndarray:
    "The 0/1 mask `m` post-processed: holes filled and the largest component kept, as asked"
    return postprocess_mask(m, fill_holes=fill, keep_largest=largest)

def rules()->dict:
    "Name → rule (probabilities → 0/1 mask) of every decision compared: thresholds, hysteresis pairs, post-processing"
    res = {f't{t}': (lambda t: lambda p: _post(p > t))(t) for t in (0.5, 0.4, 0.6)}
    for hi in (0.5, 0.7):
        for lo in (0.3, 0.4):
            res[f'h{hi}/{lo}'] = (lambda hi, lo: lambda p: _post(apply_hysteresis_threshold(p, lo, hi)))(hi, lo)
    res['t0.5 unprocessed'] = lambda p: (p > 0.5).astype(np.uint8)
    res['t0.5 holes only'] = lambda p: _post(p > 0.5, largest=False)
    res['t0.5 largest only'] = lambda p: _post(p > 0.5, fill=False)
    return res


def image_scores(prob_file:Path, truth_dir:Path, rules:dict)->dict:
    "Thresholded Jaccard of every rule on one probability map"
    iid = prob_file.name[:-len('_prob.png')]
    p = np.asarray(Image.open(prob_file), np.float32)/255
    t = read_mask(truth_dir/f'{iid}_segmentation.png')
    return {k: score_masks(t, r(p))['threshold_jaccard'] for k, r in rules.items()}


def against(t:pd.DataFrame, pred:Path, truth:Path)->pd.DataFrame:
    "Every rule's scores `t` against another arm's masks in `pred` (its per-image scores), image by image"
    other = score_folders(truth, pred)['threshold_jaccard']
    return pd.concat([paired_table(t[k], other.loc[t.index]).assign(rule=f'{k} - {pred.parent.name}') for k in t.columns],
                     ignore_index=True)

def main(a):
    rs = rules()
    files = sorted(Path(a.probs).glob('*_prob.png'))
    t = pd.DataFrame({f.name[:-len('_prob.png')]: image_scores(f, Path(a.truth), rs) for f in files}).T
    comp = pd.concat([paired_table(t[k], t['t0.5']).assign(rule=k) for k in t.columns[1:]], ignore_index=True)
    if a.against: comp = pd.concat([comp, against(t, Path(a.against), Path(a.truth))], ignore_index=True)
    print(comp.round(4).to_string(index=False))


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--probs', required=True, help='folder of <ID>_prob.png maps')
    p.add_argument('--truth', required=True, help='folder of truth masks')
    p.add_argument('--against', help="another arm's masks (e.g. the plain loop's): every rule compared with them too")
    main(p.parse_args())
